"""denoise: detect and repair Gaussian / salt-and-pepper noise; write a full repaired copy of
the dataset `dataset.root` at `denoise.out`, with report.csv (params section `denoise`)."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.cli import run_stage, stage_parser
from pipeline.data.denoise import DenoiseConfig, denoise_dataset
from pipeline.data.layout import DatasetConfig
from pipeline.params import load_section

log = logging.getLogger("denoise")


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    src = Path(load_section("dataset", DatasetConfig, args.params).root)
    cfg = load_section("denoise", DenoiseConfig, args.params)
    report = denoise_dataset(src, Path(cfg.out), cfg)
    counts = report["noise"].value_counts().to_dict()
    log.info("%d images examined: %s; written to %s", len(report), counts, cfg.out)


if __name__ == "__main__":
    run_stage(main)
