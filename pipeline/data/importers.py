"""Turn public dataset layouts into the canonical one (see pipeline.data.layout).

Each importer builds the whole destination under a temporary name, validates it with
``load_dataset`` and only then moves it into place; image files are hard-linked from the
source (no extra disk space), or copied where linking fails (another filesystem). The
destination must not exist or be empty: an importer never deletes a user's folder.

Market-1501 (``bounding_box_train/`` -> train, ``query/`` -> query, ``bounding_box_test/``
-> gallery; names like ``0002_c1s1_000451_03.jpg``: person id, camera, sequence, frame):

- ``label`` is the person id as written ("0002"), ``camera`` is ``c<N>`` ("c1");
- person id ``-1`` (junk boxes, which the official protocol ignores) is skipped everywhere,
  with the count logged;
- person id ``0000`` (distractors) is kept in the gallery with label ``"-1"``, a label no
  query has, so it competes in ranking as the protocol intends; distractors elsewhere are
  skipped with a logged count, since they are not an identity to train on or query.

DIGIX-2020 style (``train/`` with ``label.txt`` lines ``relative/path.jpg,label``, paths
relative to ``train/``; ``label.txt`` may also sit directly in the source folder; plus
unlabelled ``query/`` and ``gallery/`` folders): images in ``train/`` that ``label.txt``
does not list are left out, with the count logged.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import pandas as pd

from pipeline.data.layout import COLUMNS, Dataset, check_image_path, load_dataset, write_split
from pipeline.errors import DataError
from pipeline.io_utils import atomic_dir

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
_MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")
MARKET_DISTRACTOR_LABEL = "-1"


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # cross-device, or a filesystem without hard links
        shutil.copy2(source, target)


def _check_destination(dst: Path) -> None:
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise DataError(f"{dst}: destination exists and is not an empty folder; remove it or pick another")


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _build(
    dst: Path,
    tables: dict[str, list[tuple[str, ...]]],
    files: list[tuple[Path, str]],
    columns: dict[str, tuple[str, ...]],
) -> Dataset:
    """Link ``files`` (source, relative target) into a fresh ``dst`` and write the tables."""
    _check_destination(dst)
    with atomic_dir(dst) as tmp:
        for source, image in files:
            _link_or_copy(source, tmp / image)
        for split, rows in tables.items():
            write_split(tmp, split, pd.DataFrame(rows, columns=list(columns[split]), dtype=str))
        load_dataset(tmp)  # validate before the swap: a bad import never replaces anything
    return load_dataset(dst)


def import_market1501(src: Path, dst: Path) -> Dataset:
    """Import a Market-1501 folder ``src`` into the canonical layout at ``dst``."""
    src, dst = Path(src), Path(dst)
    tables: dict[str, list[tuple[str, ...]]] = {}
    files: list[tuple[Path, str]] = []
    for split, folder in MARKET_FOLDERS.items():
        rows = []
        junk = distractors = 0
        for path in _list_images(src / folder):
            match = _MARKET_NAME.match(path.name)
            if match is None:
                raise DataError(f"{path}: not a Market-1501 file name (expected e.g. 0002_c1s1_000451_03.jpg)")
            pid = int(match[1])
            if pid == -1:
                junk += 1
                continue
            if pid == 0 and split != "gallery":
                distractors += 1
                continue
            image = f"images/{split}/{path.relative_to(src / folder).as_posix()}"
            label = MARKET_DISTRACTOR_LABEL if pid == 0 else match[1]
            rows.append((image, label, f"c{match[2]}"))
            files.append((path, image))
        if junk or distractors:
            log.info("%s: skipped %d junk (-1) and %d distractor (0000) images", src / folder, junk, distractors)
        tables[split] = rows
    return _build(dst, tables, files, {split: COLUMNS for split in tables})


def _digix_label_file(src: Path) -> Path:
    for candidate in (src / "train" / "label.txt", src / "label.txt"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{src / 'train' / 'label.txt'}: file not found (nor {src / 'label.txt'})")


def import_digix(src: Path, dst: Path) -> Dataset:
    """Import a DIGIX-2020 style folder ``src`` into the canonical layout at ``dst``."""
    src, dst = Path(src), Path(dst)
    label_file = _digix_label_file(src)
    train_dir = src / "train"
    rows: list[tuple[str, ...]] = []
    files: list[tuple[Path, str]] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(label_file.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 2 or not all(fields):
            raise DataError(f"{label_file}: line {number}: expected 'relative/path.jpg,label', got {line!r}")
        path, label = fields
        relative = check_image_path(label_file, number, path)
        if relative in first_line:
            raise DataError(
                f"{label_file}: line {number}: duplicate image '{path}' (first listed on line {first_line[relative]})"
            )
        first_line[relative] = number
        if not (train_dir / relative).is_file():
            raise DataError(f"{label_file}: line {number}: image file not found: {train_dir / relative}")
        image = f"images/train/{relative}"
        rows.append((image, label))
        files.append((train_dir / relative, image))
    unlisted = len(_list_images(train_dir)) - len(rows) if train_dir.is_dir() else 0
    if unlisted > 0:
        log.info("%s: left out %d images that %s does not list", train_dir, unlisted, label_file.name)

    tables = {"train": rows}
    for split in ("query", "gallery"):
        folder = src / split
        tables[split] = []
        for path in _list_images(folder):
            image = f"images/{split}/{path.relative_to(folder).as_posix()}"
            tables[split].append((image,))
            files.append((path, image))
    columns = {"train": ("image", "label"), "query": ("image",), "gallery": ("image",)}
    return _build(dst, tables, files, columns)
