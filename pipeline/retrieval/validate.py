"""Input checks shared by every retrieval entry point: one clear DataError instead of a traceback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.core.errors import DataError


def check_features(name: str, array: Any) -> np.ndarray:
    """Return ``array`` as a non-empty, finite, floating 2-D numpy array or raise DataError.

    Floating inputs keep their dtype (float64 stays float64, for callers that need it);
    other numeric inputs become float32.
    """
    try:
        arr = np.asarray(array)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name}: not an array: {error}") from error
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a 2-D array (rows, dims), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{name}: empty array of shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise DataError(f"{name}: expected real numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise DataError(
            f"{name}: row {row} contains NaN or inf ({int((~finite).sum())} bad rows in all)"
        )
    return arr


def check_same_dim(query_name: str, query: np.ndarray, gallery_name: str, gallery: np.ndarray) -> None:
    if query.shape[1] != gallery.shape[1]:
        raise DataError(
            f"{query_name} has {query.shape[1]} dimensions but {gallery_name} has {gallery.shape[1]}"
        )


def check_pair(query: Any, gallery: Any) -> tuple[np.ndarray, np.ndarray]:
    """Query and gallery features checked once (``check_features`` each, same width), for the
    entry points that then run several steps on them without checking again."""
    q = check_features("query", query)
    g = check_features("gallery", gallery)
    check_same_dim("query", q, "gallery", g)
    return q, g


def check_k(k: int, available: int, what: str) -> None:
    """``k`` neighbours must exist among ``available`` items (k larger than the gallery is an error)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"{what}: k must be a positive integer, got {k!r}")
    if k > available:
        raise DataError(f"{what}: k={k} is larger than the {available} items available")


def check_same_ids(ids_by_model: Mapping[str, Sequence[str]], what: str) -> None:
    """Every model must list the same ids in the same order (fusion adds rows position by position)."""
    names = list(ids_by_model)
    if not names:
        raise DataError(f"{what}: no models given")
    first = list(ids_by_model[names[0]])
    for name in names[1:]:
        other = list(ids_by_model[name])
        if len(other) != len(first):
            raise DataError(
                f"{what}: model '{name}' has {len(other)} ids but '{names[0]}' has {len(first)}"
            )
        for row, (a, b) in enumerate(zip(first, other)):
            if a != b:
                raise DataError(
                    f"{what}: model '{name}' row {row} is '{b}' but model '{names[0]}' has '{a}'"
                )
