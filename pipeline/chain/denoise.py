"""The denoise stage's job: a repaired copy of the dataset and its report, with what a user should
look at (decode warnings, queries that are also gallery images) logged."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.core.params import StageParams
from pipeline.data.self_match import read_self_matches
from pipeline.denoise.dataset import NOT_EXAMINED, denoise_dataset

log = logging.getLogger("denoise")
WARNINGS_SHOWN = 10  # decode warnings logged one by one; report.csv lists them all


def run(params: StageParams) -> None:
    """Write the repaired copy of ``dataset.root`` and report.csv to ``denoise.out``."""
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
