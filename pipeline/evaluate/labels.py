"""Label and camera columns turned into integer codes that the metrics compare cheaply.

Labels are strings in the CSVs, but callers may hand in pandas columns read as integers;
every value is compared by its string form so ``3`` and ``"3"`` name the same identity
on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline.core.errors import DataError

Labels = Sequence[str] | Sequence[int] | np.ndarray | pd.Series


def as_label_array(values: Labels, what: str) -> np.ndarray:
    """A 1-D string array of ``values``; a missing value is a DataError naming its row."""
    array = np.asarray(values, dtype=object)
    if array.ndim != 1:
        raise DataError(f"{what}: expected a 1-D column, got shape {array.shape}")
    missing = np.flatnonzero(pd.isna(array))
    if missing.size:
        raise DataError(f"{what}: value missing at row {int(missing[0])} ({missing.size} missing in all)")
    return array.astype(str)


def encode_pair(
    query_values: Labels, gallery_values: Labels, what: str = "label"
) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes for query and gallery values over one shared vocabulary."""
    query = as_label_array(query_values, f"query {what}s")
    gallery = as_label_array(gallery_values, f"gallery {what}s")
    if query.size == 0:
        raise DataError(f"query {what}s: the query set is empty")
    if gallery.size == 0:
        raise DataError(f"gallery {what}s: the gallery set is empty")
    _, codes = np.unique(np.concatenate([query, gallery]), return_inverse=True)
    codes = codes.astype(np.int64)
    return codes[: query.size], codes[query.size :]


def check_rows(n_rows: int, n_labels: int, what: str) -> None:
    """A matrix side must match its label column; a mismatch usually means mixed-up files."""
    if n_rows != n_labels:
        raise DataError(f"{what}: {n_rows} rows in the scores but {n_labels} labels")


def as_pairs(pairs: np.ndarray | Sequence[Sequence[int]] | None) -> np.ndarray:
    """(query, gallery) index pairs as a unique (n, 2) int64 array; None gives none."""
    if pairs is None:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), axis=0)
