"""submit: the leaderboard file, one line per query: `query.jpg,{g1.jpg,...,g10.jpg}`."""

from __future__ import annotations

from pipeline.core.cli import run_stage, stage_parser
from pipeline.data.layout import read_split, split_path
from pipeline.data.self_match import recorded_pairs
from pipeline.core.errors import ConfigError
from pipeline.evaluate.submission import write_submission
from pipeline.core.params import StageParams
from pipeline.retrieval.candidates import load_candidate_sets


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = StageParams(args.params)
    cfg = params.submit
    query, gallery = (read_split(params.cache(), s, check_files=False)["image"].tolist() for s in ("query", "gallery"))
    # A query's own image (dataset.self_matches: exclude) never enters its line.
    own = recorded_pairs(params.denoised(), query, gallery)
    fused = load_candidate_sets(params.fuse.out)["fused"].without(own)
    available = fused.indices.shape[1]
    if cfg.length > available:
        raise ConfigError(
            f"{args.params}: submit.length is {cfg.length}, but the fused lists hold {available} candidates per query "
            f"(the gallery, {split_path(params.cache(), 'gallery')}, holds {len(gallery)} images; rerank.candidates: "
            f"{params.rerank.candidates}{'; each query without its own image' if len(own) else ''}): "
            f"set submit.length to at most {available}"
        )
    write_submission(cfg.out, query, gallery, fused.ranking(cfg.length), length=cfg.length)


if __name__ == "__main__":
    run_stage(main)
