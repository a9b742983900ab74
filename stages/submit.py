"""submit: the leaderboard file, one line per query: `query.jpg,{g1.jpg,...,g10.jpg}`."""

from __future__ import annotations

from pathlib import Path

from pipeline.retrieval.candidates import load_candidate_sets
from pipeline.chain.fuse_step import FuseConfig
from pipeline.chain.submit_step import SubmitConfig
from pipeline.cli import run_stage, stage_parser
from pipeline.data.cache import PreprocessConfig
from pipeline.data.denoise import DenoiseConfig
from pipeline.data.layout import read_split
from pipeline.data.self_match import recorded_pairs
from pipeline.evaluate.submission import write_submission
from pipeline.params import load_section


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    cfg = load_section("submit", SubmitConfig, args.params)
    fused = load_candidate_sets(load_section("fuse", FuseConfig, args.params).out)["fused"]
    cache = Path(load_section("preprocess", PreprocessConfig, args.params).out)
    query, gallery = (read_split(cache, s, check_files=False)["image"].tolist() for s in ("query", "gallery"))
    # A query's own image (dataset.self_matches: exclude) never enters its line.
    own = recorded_pairs(load_section("denoise", DenoiseConfig, args.params).out, query, gallery)
    write_submission(cfg.out, query, gallery, fused.without(own).ranking(cfg.length), length=cfg.length)


if __name__ == "__main__":
    run_stage(main)
