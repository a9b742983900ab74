"""Queries that are also gallery images: the same path, or a file with the same bytes.

Left in, such a query finds itself first, and scoring counts that as a hit. The first data
stage looks for them (:func:`find_self_matches`) and, by default, stops naming both rows
(``dataset.self_matches: error``). With ``dataset.self_matches: exclude`` the pairs are
recorded in ``self_matches.csv`` beside the denoised copy, and each query's own image is
removed from its ranking before the submission is written and before anything is scored
(:func:`self_match_pairs` gives the index pairs to remove).

Content is compared by SHA-256, computed only for files whose size also occurs on the other
side, so a dataset without duplicates costs one ``stat`` per image.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.data.layout import csv_line, split_path
from pipeline.core.errors import DataError
from pipeline.core.io_utils import read_text, write_csv
from pipeline.core.sections import SelfMatchMode

FILE_NAME = "self_matches.csv"
COLUMNS = ["query", "gallery", "reason"]


@dataclass(frozen=True)
class SelfMatch:
    query_row: int
    gallery_row: int
    reason: Literal["same path", "same content"]


def _digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def find_self_matches(root: Path, query: pd.DataFrame, gallery: pd.DataFrame) -> list[SelfMatch]:
    """Every (query row, gallery row) naming the same file or a byte-identical one, in query order."""
    root = Path(root)
    gallery_rows: dict[str, int] = {image: row for row, image in enumerate(gallery["image"])}
    found: dict[tuple[int, int], SelfMatch] = {}
    for q, image in enumerate(query["image"]):
        if image in gallery_rows:
            found[q, gallery_rows[image]] = SelfMatch(q, gallery_rows[image], "same path")
    by_size: dict[str, dict[int, list[int]]] = {"query": defaultdict(list), "gallery": defaultdict(list)}
    for side, table in (("query", query), ("gallery", gallery)):
        for row, image in enumerate(table["image"]):
            by_size[side][(root / image).stat().st_size].append(row)
    for size in by_size["query"].keys() & by_size["gallery"].keys():
        gallery_by_digest: dict[str, list[int]] = defaultdict(list)
        for g in by_size["gallery"][size]:
            gallery_by_digest[_digest(root / gallery["image"].iloc[g])].append(g)
        for q in by_size["query"][size]:
            for g in gallery_by_digest.get(_digest(root / query["image"].iloc[q]), []):
                found.setdefault((q, g), SelfMatch(q, g, "same content"))
    return [found[key] for key in sorted(found)]


def check_self_matches(
    root: Path, query: pd.DataFrame, gallery: pd.DataFrame, mode: SelfMatchMode
) -> pd.DataFrame:
    """The self-matches as a table (query, gallery, reason); DataError on the first one in mode "error"."""
    matches = find_self_matches(root, query, gallery)
    if matches and mode == "error":
        first = matches[0]
        raise DataError(
            f"{split_path(root, 'query')}: line {csv_line(query, first.query_row)} "
            f"('{query['image'].iloc[first.query_row]}') and {split_path(root, 'gallery')}: line "
            f"{csv_line(gallery, first.gallery_row)} ('{gallery['image'].iloc[first.gallery_row]}') are the "
            f"same image ({first.reason}; {len(matches)} such pair(s) in all): a query would find itself. "
            "Remove it from one side, or set dataset.self_matches: exclude to drop each query's own "
            "image from its ranking"
        )
    return pd.DataFrame(
        [(query["image"].iloc[m.query_row], gallery["image"].iloc[m.gallery_row], m.reason) for m in matches],
        columns=COLUMNS,
        dtype=str,
    )


def write_self_matches(folder: Path, table: pd.DataFrame) -> None:
    write_csv(Path(folder) / FILE_NAME, table.loc[:, COLUMNS])


def read_self_matches(folder: str | Path) -> pd.DataFrame:
    path = Path(folder) / FILE_NAME
    read_text(path)  # a clear DataError when it is missing
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(table.columns) != COLUMNS:
        raise DataError(f"{path}: expected columns {','.join(COLUMNS)}, got {','.join(table.columns)}")
    return table


def recorded_pairs(folder: str | Path, query_images: Sequence[str], gallery_images: Sequence[str]) -> np.ndarray:
    """The pairs that the denoise stage recorded in ``folder``, as :func:`self_match_pairs` gives them."""
    return self_match_pairs(read_self_matches(folder), query_images, gallery_images)


def self_match_pairs(table: pd.DataFrame, query_images: Sequence[str], gallery_images: Sequence[str]) -> np.ndarray:
    """(n, 2) int64 (query index, gallery index) of the recorded self-matches."""
    query_index = {image: i for i, image in enumerate(query_images)}
    gallery_index = {image: i for i, image in enumerate(gallery_images)}
    pairs = np.zeros((len(table), 2), dtype=np.int64)
    for row, (query, gallery) in enumerate(zip(table["query"], table["gallery"])):
        if query not in query_index or gallery not in gallery_index:
            raise DataError(f"{FILE_NAME}: row {row + 1} names an image outside the query/gallery sets: rerun denoise")
        pairs[row] = query_index[query], gallery_index[gallery]
    return pairs
