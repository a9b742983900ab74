"""The denoise stage's library: a full canonical copy of a dataset with noisy images repaired.

``denoise_dataset(src_root, out_root, cfg)`` writes, atomically as one folder::

    <out_root>/train.csv, query.csv, gallery.csv   the tables as read (known columns only)
    <out_root>/<every image path the CSVs name>    repaired if found noisy, else the source file
    <out_root>/report.csv                           image,split,noise,sigma,impulse_fraction,action,decode_warning
    <out_root>/self_matches.csv                     query,gallery,reason (pipeline/data/self_match.py)

As the first stage that reads the dataset, it checks all of it: every image of every split
is decoded (train images too), so a bad file stops the chain here with the user's file and
CSV line, not one stage later with the path of a copy. Query and gallery images are examined
for noise; train images only with ``apply_to_train`` (otherwise they are linked through
untouched). What a decode passes over in silence (damaged JPEG data, frames after the first:
``pipeline.data.images.decode_warnings``) goes into the report's ``decode_warning`` column, an
unexamined image getting a row of its own (noise ``not examined``), or stops the run naming
the CSV line with ``strict_decode``. An unchanged image is hard-linked (falling back to a byte copy across
filesystems), so the copy costs almost no disk space. A repaired image keeps its file name
and format.
"""

from __future__ import annotations

import os
import shutil
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import pandas as pd
from tqdm import tqdm

from pipeline.data.images import decode_warnings, read_image, write_image
from pipeline.data.layout import SPLITS, csv_line, read_split, split_path, write_split
from pipeline.denoise.estimate import NoiseEstimate, estimate_noise
from pipeline.denoise.repair import repair
from pipeline.data.self_match import check_self_matches, write_self_matches
from pipeline.core.errors import DataError
from pipeline.core.io_utils import atomic_dir, write_csv
from pipeline.core.sections import DenoiseConfig, SelfMatchMode

# Re-exported: the stage's whole API importable from one place.
__all__ = ["NOT_EXAMINED", "REPORT_COLUMNS", "DenoiseConfig", "NoiseEstimate", "denoise_dataset", "denoise_file", "estimate_noise", "repair"]

_Job = tuple[str, str, str, str, int, bool, DenoiseConfig, bool]  # src, out, image, split, CSV line, examine, cfg, strict

REPORT_COLUMNS = ["image", "split", "noise", "sigma", "impulse_fraction", "action", "decode_warning"]
NOT_EXAMINED = "not examined"  # the noise of a report row that is there for its decode warning only


def _place_unchanged(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not supported
        shutil.copy2(src, dst)


def denoise_file(
    src_root: Path, out_root: Path, image: str, split: str, cfg: DenoiseConfig, *, line: int = 0, examine: bool = True,
    strict_decode: bool = False,
) -> dict[str, object] | None:
    """Decode one image; examine it (``examine``) and return its report row, write its copy.

    A decoding error (a decode warning too, with ``strict_decode``) names the split's CSV and
    ``line`` (when given) before the file. An unexamined image has a row only for a warning.
    """
    src, dst = src_root / image, out_root / image
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        rgb = read_image(src)
        warning = "; ".join(decode_warnings(src))
        if warning and strict_decode:
            raise DataError(f"{src}: {warning} (dataset.strict_decode is on)")
    except DataError as error:
        where = f"{split_path(src_root, split)}: line {line}: " if line else ""
        raise DataError(f"{where}{error}") from error
    if not examine:
        _place_unchanged(src, dst)
        return None if not warning else {"image": image, "split": split, "noise": NOT_EXAMINED, "sigma": None,
                                          "impulse_fraction": None, "action": "none", "decode_warning": warning}
    estimate = estimate_noise(rgb, cfg.gaussian_threshold, cfg.impulse_threshold, cfg.grey_threshold)
    repaired, action = repair(rgb, estimate, cfg)
    if repaired is rgb:
        _place_unchanged(src, dst)
    else:
        write_image(dst, repaired)
    return {"image": image, "split": split, "noise": estimate.kind, "sigma": estimate.sigma,
            "impulse_fraction": estimate.impulse_fraction, "action": action, "decode_warning": warning}


def _denoise_job(job: _Job) -> dict[str, object] | None:
    src_root, out_root, image, split, line, examine, cfg, strict = job
    return denoise_file(Path(src_root), Path(out_root), image, split, cfg, line=line, examine=examine, strict_decode=strict)


def denoise_dataset(
    src_root: Path, out_root: Path, cfg: DenoiseConfig, self_matches: SelfMatchMode = "error", strict_decode: bool = False
) -> pd.DataFrame:
    """Write the repaired full copy of ``src_root`` at ``out_root``; return the report table.

    ``strict_decode``: a decode warning (``decode_warnings``) stops the run instead of being reported.
    """
    cfg.validate()
    src_root, out_root = Path(src_root), Path(out_root)
    tables = {split: read_split(src_root, split) for split in SPLITS}
    matches = check_self_matches(src_root, tables["query"], tables["gallery"], self_matches)
    examined = {"query", "gallery"} | ({"train"} if cfg.apply_to_train else set())
    with atomic_dir(out_root) as tmp:
        for split, table in tables.items():
            write_split(tmp, split, table)
        write_self_matches(tmp, matches)
        jobs = [
            (str(src_root), str(tmp), image, split, csv_line(table, row), split in examined, cfg, strict_decode)
            for split, table in tables.items()
            for row, image in enumerate(table["image"])
        ]
        rows = [row for row in _run(jobs, cfg.workers) if row is not None]
        report = pd.DataFrame(rows, columns=REPORT_COLUMNS)
        write_csv(tmp / "report.csv", report)
    return report


def _single_threaded_opencv() -> None:
    # One OpenCV thread per worker process: cfg.workers processes already fill the cores.
    cv2.setNumThreads(1)


def _run(jobs: list[_Job], workers: int) -> list[dict[str, object] | None]:
    progress = dict(total=len(jobs), desc="denoise", unit="img")
    if workers == 1:
        return [_denoise_job(job) for job in tqdm(jobs, **progress)]
    # spawn, not fork: a forked child of a process whose OpenMP/torch thread pools are running
    # can deadlock on their locks (seen when the test suite had imported torch first).
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_single_threaded_opencv
    )
    try:
        # A DataError raised in a worker is re-raised here, message intact, and aborts the run.
        return list(tqdm(pool.map(_denoise_job, jobs, chunksize=8), **progress))
    finally:
        pool.shutdown(cancel_futures=True)
