"""Folds stage: identity-grouped K folds of the denoised train split, written to folds.csv
(with the labels of ``folds.label_merge`` merged: training and validation read them from there)."""

from __future__ import annotations

from pipeline.core.cli import run_stage, stage_parser
from pipeline.data.folds import make_folds
from pipeline.data.label_merge import apply_label_merge, read_label_merge
from pipeline.data.layout import read_split, split_path
from pipeline.core.io_utils import write_csv
from pipeline.core.params import StageParams


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = StageParams(args.params)
    cfg = params.folds
    train = read_split(params.denoised(), "train")
    if cfg.label_merge:  # before the folds: a merged identity must not straddle train and validation
        train["label"] = apply_label_merge(train["label"], read_label_merge(cfg.label_merge), cfg.label_merge)
    # errors name the user's file (the denoised copy holds the same rows)
    source = str(split_path(params.dataset.root, "train"))
    write_csv(cfg.out, make_folds(train, cfg.k, cfg.seed, cfg.query_fraction, source))


if __name__ == "__main__":
    run_stage(main)
