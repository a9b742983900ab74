"""duplicates: candidate duplicate identities in the training labels, from the classifier rows
of one trained model (``duplicates.model``, fold ``duplicates.fold``; unset: the first of
``train.models`` and ``train.folds``): groups.csv, a merge.csv to review and name in
``folds.label_merge``, summary.json and a contact sheet of each group's training images."""

from __future__ import annotations

from pipeline.chain import duplicates
from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.params import StageParams


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    duplicates.run(StageParams(args.params))


if __name__ == "__main__":
    run_stage(main)
