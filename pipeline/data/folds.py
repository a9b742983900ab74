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

from pipeline.core.errors import DataError
from pipeline.core.io_utils import read_string_csv

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


def make_folds(train: pd.DataFrame, k: int, seed: int, query_fraction: float, source: str = "train table") -> pd.DataFrame:
    """Return ``train`` (same rows and order) with an int ``fold`` and a str ``role`` column.

    ``source`` (the train CSV) goes into errors."""
    if "label" not in train.columns:
        raise DataError("make_folds: the train table has no 'label' column")
    labels = train["label"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    # Sorted unique labels first, so the result depends on the table's content and seed only.
    names, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    eligible = np.flatnonzero(counts >= 2)
    if len(eligible) < k:
        # Single-image identities still train (fold -1), but validation and the metric losses
        # need identities of two images: say how to get k folds of them.
        way_on = (f"set folds.k to {len(eligible)}, or add images" if len(eligible) >= 2 else
                  "add a second image of at least 2 identities (one to query, one to find)")
        raise DataError(
            f"{source} has {len(eligible)} identities with at least 2 images, fewer than k={k} folds: each fold "
            f"validates on held-out identities of two or more images, and the triplet losses pair them too; {way_on}"
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


def single_shot_split(folds: pd.DataFrame, fold: int) -> FoldSplit:
    """Fold ``fold``'s held-out identities in a single-shot test's shape: one query and one
    gallery image each (``fold_indices`` gives the multi-shot shape that ``folds.query_fraction`` sets).

    The query is the identity's first query-role row (make_folds drew the roles at random with
    ``folds.seed``); the gallery image is the first of its other held-out rows (gallery roles,
    then its other queries, in table order) whose ``camera`` is known and differs from the
    query's, or the first of them where none does. Nothing else is drawn, so the split follows
    from folds.csv alone and the rerank and fuse stages, which both make it, cannot disagree.
    Identities without a query-role row or a second held-out image (a hand-edited table) are left out.
    """
    split = fold_indices(folds, fold)
    labels = folds["label"].astype(str).to_numpy()
    cameras = folds["camera"].fillna("").astype(str).to_numpy() if "camera" in folds.columns else np.full(len(folds), "")
    query_of: dict[str, int] = {}
    for row in split.val_query:
        query_of.setdefault(labels[row], int(row))
    others: dict[str, list[int]] = {label: [] for label in query_of}
    for row in np.concatenate([split.val_gallery, split.val_query]):
        if labels[row] in others and row != query_of[labels[row]]:
            others[labels[row]].append(int(row))
    queries, gallery = [], []
    for label, query in query_of.items():
        if not others[label]:
            continue
        crossing = [row for row in others[label] if cameras[query] and cameras[row] and cameras[row] != cameras[query]]
        queries.append(query)
        gallery.append((crossing or others[label])[0])
    return FoldSplit(
        train=split.train,
        val_query=np.sort(np.array(queries, dtype=np.int64)),
        val_gallery=np.sort(np.array(gallery, dtype=np.int64)),
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
