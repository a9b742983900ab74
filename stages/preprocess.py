"""Preprocess stage: decode and rescale-pad every image of the denoised dataset into a memmap cache."""

from __future__ import annotations

from pathlib import Path

from pipeline.cli import run_stage, stage_parser
from pipeline.data.cache import PreprocessConfig, build_cache
from pipeline.data.denoise import DenoiseConfig
from pipeline.params import load_section


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    cfg = load_section("preprocess", PreprocessConfig, args.params)
    build_cache(Path(load_section("denoise", DenoiseConfig, args.params).out), Path(cfg.out), cfg.size, cfg.fill)


if __name__ == "__main__":
    run_stage(main)
