"""denoise: detect and repair Gaussian / salt-and-pepper noise; write a full repaired copy of
the dataset `dataset.root` at `denoise.out`, with report.csv (params section `denoise`)."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.core.cli import run_stage, stage_parser
from pipeline.denoise.dataset import NOT_EXAMINED, denoise_dataset
from pipeline.data.self_match import read_self_matches
from pipeline.core.params import StageParams

log = logging.getLogger("denoise")
WARNINGS_SHOWN = 10  # decode warnings logged one by one; report.csv lists them all


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = StageParams(args.params)
    dataset, cfg = params.dataset, params.denoise
    report = denoise_dataset(Path(dataset.root), params.denoised(), cfg, dataset.self_matches, dataset.strict_decode)
    self_matches = read_self_matches(cfg.out)
    examined = report[report["noise"] != NOT_EXAMINED]
    warned = report[report["decode_warning"] != ""]
    log.info("%d images examined: %s; %d decoded with a warning; written to %s",
             len(examined), examined["noise"].value_counts().to_dict(), len(warned), cfg.out)
    for row in warned.head(WARNINGS_SHOWN).itertuples():
        log.warning("%s (%s): %s", row.image, row.split, row.decode_warning)
    if len(warned):
        log.warning("%d images decoded with a warning (damaged data, or frames after the first): column decode_warning "
                    "of %s/report.csv; dataset.strict_decode: true makes them errors", len(warned), cfg.out)
    if len(self_matches):
        log.warning("%d queries are also gallery images: each one's own image is left out of its ranking "
                    "(listed in %s/self_matches.csv)", len(self_matches), cfg.out)


if __name__ == "__main__":
    run_stage(main)
