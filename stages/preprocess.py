"""Preprocess stage: decode and rescale-pad every image of the denoised dataset into a memmap cache."""

from __future__ import annotations

from pipeline.core.cli import run_stage, stage_parser
from pipeline.data.cache import build_cache
from pipeline.core.params import StageParams


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = StageParams(args.params)
    cfg = params.preprocess
    build_cache(params.denoised(), params.cache(), cfg.size, cfg.fill)


if __name__ == "__main__":
    run_stage(main)
