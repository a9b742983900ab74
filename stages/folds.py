"""Folds stage: identity-grouped K folds of the denoised train split, written to folds.csv."""

from __future__ import annotations

from pipeline.cli import run_stage, stage_parser
from pipeline.data.folds import make_folds
from pipeline.data.layout import read_split
from pipeline.io_utils import write_csv
from pipeline.params import StageParams


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = StageParams(args.params)
    cfg = params.folds
    write_csv(cfg.out, make_folds(read_split(params.denoised(), "train"), cfg.k, cfg.seed, cfg.query_fraction))


if __name__ == "__main__":
    run_stage(main)
