"""check: every params section, every recipe of train.models and the constraints between them
and the dataset's size, before the first stage does any work (pipeline/preflight.py).

Its output is a constant line, so a rerun that passes (after any params or recipe change) leaves
every later stage up to date; a failing one stops `dvc repro` before anything else runs."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.io_utils import write_text
from pipeline.core.params import StageParams
from pipeline.preflight import check_chain

PASSED = "the params, the recipes and the dataset's tables passed the chain's checks\n"


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where to write the (constant) record of a pass")
    args = parser.parse_args(argv)
    check_chain(StageParams(args.params))
    write_text(args.out, PASSED)


if __name__ == "__main__":
    run_stage(main)
