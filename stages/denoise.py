"""denoise: detect and repair Gaussian / salt-and-pepper noise; write a full repaired copy of
the dataset `dataset.root` at `denoise.out`, with report.csv (params section `denoise`)."""

from __future__ import annotations

from pipeline.chain import denoise
from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.params import StageParams


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    denoise.run(StageParams(args.params))


if __name__ == "__main__":
    run_stage(main)
