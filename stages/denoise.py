"""denoise: detect and repair Gaussian / salt-and-pepper noise; write a full repaired copy of
the dataset `dataset.root` at `denoise.out`, with report.csv (params section `denoise`)."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.cli import run_stage, stage_parser
from pipeline.denoise.dataset import denoise_dataset
from pipeline.data.self_match import read_self_matches
from pipeline.params import StageParams

log = logging.getLogger("denoise")


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = StageParams(args.params)
    dataset, cfg = params.dataset, params.denoise
    report = denoise_dataset(Path(dataset.root), params.denoised(), cfg, dataset.self_matches)
    self_matches = read_self_matches(cfg.out)
    counts = report["noise"].value_counts().to_dict()
    log.info("%d images examined: %s; written to %s", len(report), counts, cfg.out)
    if len(self_matches):
        log.warning("%d queries are also gallery images: each one's own image is left out of its ranking "
                    "(listed in %s/self_matches.csv)", len(self_matches), cfg.out)


if __name__ == "__main__":
    run_stage(main)
