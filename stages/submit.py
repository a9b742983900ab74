"""submit: the leaderboard file, one line per query: `query.jpg,{g1.jpg,...,g10.jpg}`."""

from __future__ import annotations

from pipeline.cli import run_stage, stage_parser
from pipeline.data.layout import read_split
from pipeline.data.self_match import recorded_pairs
from pipeline.evaluate.submission import write_submission
from pipeline.params import StageParams
from pipeline.retrieval.candidates import load_candidate_sets


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = StageParams(args.params)
    cfg = params.submit
    fused = load_candidate_sets(params.fuse.out)["fused"]
    query, gallery = (read_split(params.cache(), s, check_files=False)["image"].tolist() for s in ("query", "gallery"))
    # A query's own image (dataset.self_matches: exclude) never enters its line.
    own = recorded_pairs(params.denoised(), query, gallery)
    write_submission(cfg.out, query, gallery, fused.without(own).ranking(cfg.length), length=cfg.length)


if __name__ == "__main__":
    run_stage(main)
