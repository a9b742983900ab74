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

DukeMTMC-reID (``0005_c2_f0046985.jpg``) and CUHK03-NP, the new 767/700 protocol of CUHK03
(Zhong et al. 2017; ``detected/`` and ``labeled/`` folders, each Market-style with names like
``0001_c1_1.png``), use the same three folders, the same names and the same rules (their
releases hold no ``-1`` or ``0000`` ids, so the rules change nothing there); torchreid and
fast-reid read them so too.

MSMT17 (``MSMT17_V1/`` with ``train/`` + ``test/``, or ``MSMT17_V2/`` with ``mask_train_v2/``
+ ``mask_test_v2/``, beside ``list_train.txt`` / ``list_val.txt`` / ``list_query.txt`` /
``list_gallery.txt``, lines ``relative/path.jpg pid``; train and val paths are relative to the
train folder, query and gallery paths to the test folder): the label is the list's pid, the
camera ``c<N>`` from the file name's third field (``0000_000_01_0303morning_0015_0.jpg`` ->
``c1``). Test ids are numbered from 0 again, as train ids are, so query/gallery labels get
the prefix ``test_``: a string shared by two splits always means one person here.
``list_val.txt`` (other images of the training ids) is left out of train as the published
protocol does, or added to it (``msmt17-trainval``).

A generic ``pid_cam`` folder (``train/``, ``query/``, ``gallery/`` holding
``<person id>_<camera>_<anything>.<ext>`` files, e.g. ``0001_c1_0001.jpg``): label and camera
as written, no ids with special meaning.

DIGIX-2020 style (``train/`` with ``label.txt`` lines ``relative/path.jpg,label``, paths
relative to ``train/``; ``label.txt`` may also sit directly in the source folder; plus
unlabelled ``query/`` and ``gallery/`` folders): images in ``train/`` that ``label.txt``
does not list are left out, with the count logged.

Errors name the file (and line of a list) that does not fit.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pipeline.data.layout import COLUMNS, Dataset, check_image_path, load_dataset, write_split
from pipeline.core.errors import DataError
from pipeline.core.io_utils import atomic_dir

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
_MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")
MARKET_DISTRACTOR_LABEL = "-1"
CUHK03_IMAGES = ("detected", "labeled")  # CUHK03-NP's two box sets, one folder each
# each MSMT17 release's (train, test) image folders, beside the list files
MSMT17_FOLDERS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}
_MSMT17_NAME = re.compile(r"^\d+_\d+_(\d+)_")  # pid_index_camera_..., e.g. 0000_000_01_0303morning_0015_0.jpg
MSMT17_TEST_PREFIX = "test_"
PID_CAM_FOLDERS = {split: split for split in ("train", "query", "gallery")}
_PID_CAM_NAME = re.compile(r"^([^_]+)_([^_]+)_.")

# a folder importer's verdict on one file: (label, camera), or the reason it is skipped
Parse = Callable[[Path, str], tuple[str, str] | str]

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


def _import_folders(src: Path, dst: Path, folders: dict[str, str], parse: Parse) -> Dataset:
    """Import one folder per split; ``parse(path, split)`` names each image's label and camera."""
    tables: dict[str, list[tuple[str, ...]]] = {}
    files: list[tuple[Path, str]] = []
    for split, folder in folders.items():
        rows = []
        skipped: Counter[str] = Counter()
        for path in _list_images(src / folder):
            verdict = parse(path, split)
            if isinstance(verdict, str):
                skipped[verdict] += 1
                continue
            image = f"images/{split}/{path.relative_to(src / folder).as_posix()}"
            rows.append((image, *verdict))
            files.append((path, image))
        if skipped:
            counts = " and ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))
            log.info("%s: skipped %s images", src / folder, counts)
        tables[split] = rows
    return _build(dst, tables, files, {split: COLUMNS for split in tables})


def _market_style(src: Path, dst: Path, dataset: str, example: str) -> Dataset:
    """Market-1501's folders, names and junk/distractor rules (see the module docstring)."""

    def parse(path: Path, split: str) -> tuple[str, str] | str:
        match = _MARKET_NAME.match(path.name)
        if match is None:
            raise DataError(f"{path}: not a {dataset} file name (expected <person id>_c<camera>..., e.g. {example})")
        pid = int(match[1])
        if pid == -1:
            return "junk (-1)"
        if pid == 0 and split != "gallery":
            return "distractor (0000)"
        return (MARKET_DISTRACTOR_LABEL if pid == 0 else match[1]), f"c{match[2]}"

    return _import_folders(Path(src), Path(dst), MARKET_FOLDERS, parse)


def import_market1501(src: Path, dst: Path) -> Dataset:
    """Import a Market-1501 folder ``src`` into the canonical layout at ``dst``."""
    return _market_style(src, dst, "Market-1501", "0002_c1s1_000451_03.jpg")


def import_dukemtmc(src: Path, dst: Path) -> Dataset:
    """Import a DukeMTMC-reID folder ``src`` (the one holding bounding_box_train/) at ``dst``."""
    return _market_style(src, dst, "DukeMTMC-reID", "0005_c2_f0046985.jpg")


def import_cuhk03_np(src: Path, dst: Path, images: str = "detected") -> Dataset:
    """Import CUHK03-NP's ``images`` box set ("detected" or "labeled") of the folder ``src``."""
    if images not in CUHK03_IMAGES:
        raise ValueError(f"images must be one of {', '.join(CUHK03_IMAGES)}, got {images!r}")
    folder = Path(src) / images
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (CUHK03-NP holds {' and '.join(f'{i}/' for i in CUHK03_IMAGES)})")
    return _market_style(folder, dst, "CUHK03-NP", "0001_c1_1.png")


def import_pid_cam(src: Path, dst: Path) -> Dataset:
    """Import ``src``/{train,query,gallery}/ of ``<pid>_<camera>_<anything>`` files at ``dst``."""

    def parse(path: Path, split: str) -> tuple[str, str]:
        match = _PID_CAM_NAME.match(path.stem)
        if match is None:
            raise DataError(f"{path}: not a pid_cam file name (expected <person id>_<camera>_<anything>, e.g. 0001_c1_0001.jpg)")
        return match[1], match[2]

    return _import_folders(Path(src), Path(dst), PID_CAM_FOLDERS, parse)


def _msmt17_folders(src: Path) -> tuple[Path, Path]:
    for train, test in MSMT17_FOLDERS.values():
        if (src / train).is_dir() and (src / test).is_dir():
            return src / train, src / test
    expected = " or ".join(f"{train}/ + {test}/ ({release})" for release, (train, test) in MSMT17_FOLDERS.items())
    raise DataError(f"{src}: no MSMT17 image folders (expected {expected} beside list_train.txt)")


def _read_msmt17_list(
    list_file: Path, image_dir: Path, split: str, prefix: str, seen: dict[Path, str]
) -> tuple[list[tuple[str, ...]], list[tuple[Path, str]]]:
    """Rows and files of one MSMT17 list; ``seen`` (image -> "file: line N") spans every list."""
    if not list_file.is_file():
        raise DataError(f"{list_file}: file not found")
    rows: list[tuple[str, ...]] = []
    files: list[tuple[Path, str]] = []
    for number, line in enumerate(list_file.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise DataError(f"{list_file}: line {number}: expected 'relative/path.jpg pid', got {line!r}")
        path, pid = fields
        relative = check_image_path(list_file, number, path)
        source = image_dir / relative
        if source in seen:
            raise DataError(f"{list_file}: line {number}: image '{path}' is listed twice (first in {seen[source]})")
        seen[source] = f"{list_file.name}: line {number}"
        match = _MSMT17_NAME.match(Path(relative).name)
        if match is None:
            raise DataError(
                f"{list_file}: line {number}: '{path}' is not an MSMT17 file name "
                "(expected <pid>_<index>_<camera>_..., e.g. 0000_000_01_0303morning_0015_0.jpg)"
            )
        if not source.is_file():
            raise DataError(f"{list_file}: line {number}: image file not found: {source}")
        image = f"images/{split}/{relative}"
        rows.append((image, prefix + pid, f"c{int(match[1])}"))
        files.append((source, image))
    return rows, files


def import_msmt17(src: Path, dst: Path, with_val: bool = False) -> Dataset:
    """Import an MSMT17 release folder ``src`` (MSMT17_V1 or MSMT17_V2) at ``dst``; ``with_val``
    adds list_val.txt's images to train."""
    src = Path(src)
    train_dir, test_dir = _msmt17_folders(src)
    lists = {
        "train": [("list_train.txt", train_dir, "")] + ([("list_val.txt", train_dir, "")] if with_val else []),
        "query": [("list_query.txt", test_dir, MSMT17_TEST_PREFIX)],
        "gallery": [("list_gallery.txt", test_dir, MSMT17_TEST_PREFIX)],
    }
    tables: dict[str, list[tuple[str, ...]]] = {}
    files: list[tuple[Path, str]] = []
    seen: dict[Path, str] = {}
    for split, sources in lists.items():
        tables[split] = []
        for name, image_dir, prefix in sources:
            rows, split_files = _read_msmt17_list(src / name, image_dir, split, prefix, seen)
            tables[split] += rows
            files += split_files
    if not with_val and (src / "list_val.txt").is_file():
        log.info("%s: left out of train, as the published protocol does", src / "list_val.txt")
    return _build(Path(dst), tables, files, {split: COLUMNS for split in tables})


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
