"""Identity-grouped K folds for validation that mirrors the test: unseen identities only.

Every identity with at least two images belongs to exactly one fold. When fold ``f`` is
held out, its identities form the validation query/gallery (a few query images per
identity, the rest gallery) and all other rows train. Identities with a single image
cannot be queried against anything, so they get fold -1 and always train.

Assignment: identities are shuffled with ``seed``, sorted by image count (largest first,
ties in shuffled order) and each goes to the fold with the fewest images so far (lowest
index on ties) -- the greedy "longest processing time" rule: the largest and smallest folds
differ by at most the image count of the largest identity.

Why not scikit-learn's GroupKFold (1.9): with ``shuffle=False`` it balances image counts by
the same rule but takes no seed (identities of equal size always fall the same way); with
``shuffle=True, random_state=seed`` it splits the shuffled identities into chunks of equal
identity count and balances no image counts (``GroupKFold._iter_test_indices``), so a few
large identities can make one fold several times another. It also picks no query/gallery
roles. The rule above is a few lines; the library would give a weaker guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import DataError
from pipeline.io_utils import read_string_csv

TRAIN_FOLD = -1


@dataclass(frozen=True)
class FoldSplit:
    """Row indices (into the folds table) for one held-out fold."""

    train: np.ndarray
    val_query: np.ndarray
    val_gallery: np.ndarray


def queries_per_identity(n: int, query_fraction: float) -> int:
    """max(1, round(query_fraction * n)) rounded half up, leaving at least one gallery image."""
    return min(n - 1, max(1, int(np.floor(query_fraction * n + 0.5))))


def make_folds(train: pd.DataFrame, k: int, seed: int, query_fraction: float) -> pd.DataFrame:
    """Return ``train`` (same rows and order) with an int ``fold`` and a str ``role`` column."""
    if "label" not in train.columns:
        raise DataError("make_folds: the train table has no 'label' column")
    labels = train["label"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    # Sorted unique labels first, so the result depends on the table's content and seed only.
    names, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    eligible = np.flatnonzero(counts >= 2)
    if len(eligible) < k:
        raise DataError(
            f"train table has {len(eligible)} identities with at least 2 images, fewer than k={k} folds"
        )
    shuffled = rng.permutation(eligible)
    order = shuffled[np.argsort(-counts[shuffled], kind="stable")]
    fold_of_identity = np.full(len(names), TRAIN_FOLD, dtype=np.int64)
    fold_images = np.zeros(k, dtype=np.int64)
    for identity in order:
        fold = int(np.argmin(fold_images))
        fold_of_identity[identity] = fold
        fold_images[fold] += counts[identity]

    role = np.full(len(labels), "train", dtype=object)
    rows_by_identity = np.argsort(inverse, kind="stable")  # rows grouped by identity, table order within
    starts = np.concatenate([[0], np.cumsum(counts)])
    for identity in eligible:  # ascending order: the rng draws below are reproducible
        rows = rows_by_identity[starts[identity] : starts[identity + 1]]
        picked = rng.permutation(rows)
        n_query = queries_per_identity(len(rows), query_fraction)
        role[picked[:n_query]] = "query"
        role[picked[n_query:]] = "gallery"

    out = train.copy()
    out["fold"] = fold_of_identity[inverse]
    out["role"] = pd.Series(role, index=train.index, dtype=str)
    return out


def fold_indices(folds: pd.DataFrame, fold: int) -> FoldSplit:
    """Rows that train, and the validation query / gallery rows, when ``fold`` is held out."""
    values = folds["fold"].to_numpy()
    present = sorted(int(f) for f in np.unique(values) if f != TRAIN_FOLD)
    if fold not in present:
        raise ValueError(f"fold {fold} is not in the folds table (folds: {present})")
    held_out = values == fold
    roles = folds["role"].to_numpy()
    return FoldSplit(
        train=np.flatnonzero(~held_out),
        val_query=np.flatnonzero(held_out & (roles == "query")),
        val_gallery=np.flatnonzero(held_out & (roles == "gallery")),
    )


def read_folds(path: str | Path) -> pd.DataFrame:
    """Read a folds.csv written by the folds stage: labels stay strings, ``fold`` is int."""
    path = Path(path)
    folds = read_string_csv(path, ("image", "label", "fold", "role"), "file not found (run the folds stage)")
    try:
        folds["fold"] = folds["fold"].astype(np.int64)
    except ValueError as error:
        raise DataError(f"{path}: column 'fold' must hold integers ({error})") from error
    return folds
