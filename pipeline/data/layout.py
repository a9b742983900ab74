"""The canonical dataset layout: three CSV tables beside the images they name.

    <root>/train.csv     image,label[,camera]
    <root>/query.csv     image[,label][,camera]
    <root>/gallery.csv   image[,label][,camera]

``image`` is a path relative to ``<root>``, read normalised (``\\`` as ``/``, ``a/./b`` as ``a/b``),
so every stage opens the file the reader checked. Every cell is read as a string ("007" stays
"007"). Label and camera cells are stripped of surrounding whitespace, with one warning per
file that counts the rows: a space after a comma (``img.jpg, id1``, as hand-written and some
exported CSVs have) never means another identity, so refusing the file would only stop a table
whose meaning is clear, and keeping it would silently split ``id1`` from `` id1``. A header
that is one field holding ``;``, a tab or ``|`` is refused naming that delimiter. Other columns (bounding boxes, attributes) are read past with one
warning per file, but a column whose name is close to a known one (``lable``) is an error,
so a misspelling never silently drops the labels used for scoring. A split with no data
rows is an error too: every later stage would fail on it less clearly. Query and gallery
image names must fit the submission format (``query.jpg,{g1.jpg,...}``): a base name with
``,{}`` or a line break, or a base name shared by two rows of one split, is refused here,
before any training, naming the CSV line.

Each table remembers the CSV line of each row (:func:`csv_line`) for later messages.

The CSV is parsed with the standard ``csv`` module rather than ``pandas.read_csv`` because
errors must name the physical line (header = line 1) and pandas skips blank lines without
telling which rows moved.
"""

from __future__ import annotations

import csv
import difflib
import logging
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import pandas as pd

from pipeline.core.errors import DataError
from pipeline.core.io_utils import read_text, write_csv

SPLITS = ("train", "query", "gallery")
COLUMNS = ("image", "label", "camera")
STRIPPED = ("label", "camera")  # names: surrounding whitespace is never part of them
_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "vertical bar"}  # what other CSV dialects separate with
RANKED_SPLITS = ("query", "gallery")  # their base names are written into the submission

_UNSUBMITTABLE = re.compile(r"[,{}\r\n]")  # the submission format's own punctuation
_LINES = "csv_lines"  # DataFrame.attrs key: the CSV line of each row

log = logging.getLogger(__name__)


def split_path(root: str | Path, split: str) -> Path:
    _check_split(split)
    return Path(root) / f"{split}.csv"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def _required(split: str) -> tuple[str, ...]:
    return ("image", "label") if split == "train" else ("image",)


def read_split(root: str | Path, split: str, *, check_files: bool = True) -> pd.DataFrame:
    """Read and validate ``<root>/<split>.csv``; return columns image[, label][, camera] as str."""
    root = Path(root)
    csv_path = split_path(root, split)
    # utf-8-sig: spreadsheet programs prepend a byte-order mark to the header.
    text = read_text(csv_path, encoding="utf-8-sig")
    if not text.strip():
        raise DataError(f"{csv_path}: empty file (expected a header line '{','.join(COLUMNS)}')")

    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    try:
        header = next(reader)
        columns = _check_header(csv_path, split, header)
        known = [i for i, name in enumerate(columns) if name in COLUMNS]
        values: dict[str, list[str]] = {columns[i]: [] for i in known}
        stripped: dict[str, list[int]] = {name: [] for name in STRIPPED}  # the lines of each column's padded cells
        first_line: dict[str, int] = {}
        names = _BaseNames(csv_path) if split in RANKED_SPLITS else None
        for row in reader:
            line = reader.line_num
            if not row:
                continue  # blank lines (often trailing) carry nothing; line numbers stay exact
            if len(row) != len(columns):
                raise DataError(
                    f"{csv_path}: line {line}: expected {len(columns)} fields ({','.join(columns)}), got {len(row)}"
                )
            for i in known:
                cell = row[i]
                if not cell.strip():
                    raise DataError(f"{csv_path}: line {line}: empty '{columns[i]}' cell")
                if columns[i] in STRIPPED and cell != cell.strip():
                    stripped[columns[i]].append(line)
                    cell = cell.strip()
                values[columns[i]].append(cell)
            image = row[columns.index("image")]
            key = check_image_path(csv_path, line, image)
            values["image"][-1] = key
            if key in first_line:
                raise DataError(
                    f"{csv_path}: line {line}: duplicate image '{image}' (first listed on line {first_line[key]})"
                )
            first_line[key] = line
            if names is not None:
                names.add(line, key)
            if check_files:
                _check_file(csv_path, line, image, root / key)
    except csv.Error as error:
        raise DataError(f"{csv_path}: line {reader.line_num}: malformed CSV ({error})") from error
    if not first_line:
        raise DataError(f"{csv_path}: no data rows after the header")
    _warn_stripped(csv_path, stripped)
    # Canonical column order, whatever the order in the file.
    frame = pd.DataFrame({name: pd.Series(values[name], dtype=str) for name in _canonical(columns)})
    frame.attrs[_LINES] = list(first_line.values())
    return frame


def _check_file(csv_path: Path, line: int, image: str, path: Path) -> None:
    """The image must be a file; the error shows the path as written and as resolved."""
    if path.is_dir():
        raise DataError(f"{csv_path}: line {line}: '{image}' is a directory, not an image file (resolved: {path})")
    if not path.is_file():
        raise DataError(f"{csv_path}: line {line}: image file not found: '{image}' (resolved: {path})")


def _warn_stripped(csv_path: Path, stripped: dict[str, list[int]]) -> None:
    counts = [f"{len(lines)} {name} cell{'s' if len(lines) > 1 else ''}" for name, lines in stripped.items() if lines]
    if counts:
        first = min(lines[0] for lines in stripped.values() if lines)
        log.warning("%s: read %s without their surrounding whitespace (first on line %d)", csv_path, " and ".join(counts), first)


def csv_line(table: pd.DataFrame, row: int) -> int:
    """The CSV line (header = 1) of 0-based ``row`` of a table from :func:`read_split`."""
    lines = table.attrs.get(_LINES)
    return int(lines[row]) if lines is not None and len(lines) == len(table) else row + 2


def submission_name(image: str) -> str:
    """The name the submission file uses for ``image``: its base name."""
    return posixpath.basename(image.replace("\\", "/"))


def unsubmittable(name: str) -> bool:
    """True when ``name`` is empty or holds the submission format's punctuation (``,{}``, line breaks)."""
    return not name or _UNSUBMITTABLE.search(name) is not None


class _BaseNames:
    """Query/gallery rows must have distinct base names that the submission format can carry."""

    def __init__(self, csv_path: Path) -> None:
        self.csv_path = csv_path
        self.first_line: dict[str, int] = {}

    def add(self, line: int, image: str) -> None:
        name = submission_name(image)
        if unsubmittable(name):
            raise DataError(
                f"{self.csv_path}: line {line}: image name {name!r} cannot be written into the submission "
                "(it is empty or holds one of , { } or a line break): rename the file"
            )
        if name in self.first_line:
            raise DataError(
                f"{self.csv_path}: line {line}: image name {name!r} is also the name on line "
                f"{self.first_line[name]}; the submission names images by base name, so they must differ"
            )
        self.first_line[name] = line


def _check_header(csv_path: Path, split: str, header: list[str]) -> list[str]:
    if len(header) == 1:
        found = [name for delimiter, name in _DELIMITERS.items() if delimiter in header[0]]
        if found:
            raise DataError(f"{csv_path}: line 1: the header {header[0]!r} is one field holding a {found[0]}: "
                            f"the file looks {found[0]}-separated; the canonical layout separates columns with commas")
    columns = [name.strip() for name in header]
    unknown = [name for name in columns if name not in COLUMNS]
    for name in unknown:
        close = difflib.get_close_matches(name.lower(), COLUMNS, n=1, cutoff=0.75)
        if close:
            raise DataError(f"{csv_path}: line 1: unknown column '{name}' (did you mean '{close[0]}'?)")
    if unknown:
        log.warning("%s: ignoring column(s) %s (read: %s)", csv_path, ", ".join(map(repr, unknown)),
                    ", ".join(c for c in columns if c in COLUMNS))
    if len(set(columns)) != len(columns):
        raise DataError(f"{csv_path}: line 1: repeated column name in header {header}")
    for name in _required(split):
        if name not in columns:
            raise DataError(f"{csv_path}: line 1: missing required column '{name}'")
    return columns


def _canonical(columns: list[str]) -> list[str]:
    return [name for name in COLUMNS if name in columns]


def check_image_path(source: Path, line: int, image: str) -> str:
    """Return ``image`` normalised; reject absolute paths and paths leaving the root.

    ``source`` and ``line`` (the listing file and its line) only go into the error message.
    """
    if image.startswith(("/", "\\")) or PureWindowsPath(image).drive:
        raise DataError(
            f"{source}: line {line}: image path '{image}' is absolute; use a path relative to the dataset root"
        )
    normal = posixpath.normpath(image.replace("\\", "/"))
    if normal == ".." or normal.startswith("../") or normal == ".":
        raise DataError(f"{source}: line {line}: image path '{image}' points outside the dataset root")
    return normal


@dataclass(frozen=True)
class Dataset:
    """One dataset in the canonical layout, its three tables already validated."""

    root: Path
    train: pd.DataFrame
    query: pd.DataFrame
    gallery: pd.DataFrame

    def split(self, name: str) -> pd.DataFrame:
        _check_split(name)
        return getattr(self, name)


def load_dataset(root: str | Path, *, check_files: bool = True) -> Dataset:
    """Read all three splits of ``root`` (each one is required)."""
    root = Path(root)
    tables = {split: read_split(root, split, check_files=check_files) for split in SPLITS}
    return Dataset(root=root, **tables)


def write_split(root: str | Path, split: str, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as ``<root>/<split>.csv`` atomically, columns in canonical order."""
    csv_path = split_path(root, split)
    unknown = [str(name) for name in frame.columns if name not in COLUMNS]
    if unknown:
        raise DataError(f"{csv_path}: cannot write unknown column '{unknown[0]}' (allowed: {', '.join(COLUMNS)})")
    missing = [name for name in _required(split) if name not in frame.columns]
    if missing:
        raise DataError(f"{csv_path}: cannot write without required column '{missing[0]}'")
    ordered = frame.loc[:, _canonical(list(frame.columns))]
    if ordered.isna().any().any():
        column = ordered.columns[ordered.isna().any()][0]
        raise DataError(f"{csv_path}: cannot write a missing value in column '{column}'")
    write_csv(csv_path, ordered.astype(str))
    return csv_path

