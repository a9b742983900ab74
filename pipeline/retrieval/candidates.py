"""Per-query candidate lists, the one format the rerank, fuse and evaluate stages exchange.

A list holds, for every query, ``indices`` into the gallery with their ascending distances
``values`` (both (Nq, C)). With C equal to the gallery size the list is the full ranking;
with C smaller, memory stays at Nq x C for galleries where Nq x Ng does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import DataError
from pipeline.core.io_utils import atomic_path


@dataclass(frozen=True)
class CandidateLists:
    indices: np.ndarray  # (Nq, C) int64 gallery indices, best first
    values: np.ndarray  # (Nq, C) float32 distances, ascending along each row

    def __post_init__(self) -> None:
        if self.indices.shape != self.values.shape or self.indices.ndim != 2:
            raise DataError(f"candidate lists: indices {self.indices.shape} and distances {self.values.shape} differ")

    def ranking(self, k: int) -> np.ndarray:
        """Gallery indices (Nq, k), best first."""
        if self.indices.shape[1] < k:
            raise DataError(f"only {self.indices.shape[1]} candidates per query, {k} asked for")
        return self.indices[:, :k]

    def without(self, pairs: np.ndarray) -> CandidateLists:
        """These lists with each (query, gallery) pair of ``pairs`` taken out (a query's own image).

        Rows stay equally long: every row is cut to C minus the most pairs any row lost.
        """
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if pairs.size == 0:
            return self
        drop = np.zeros(self.indices.shape, dtype=bool)
        for q, g in pairs:
            drop[q] |= self.indices[q] == g
        width = self.indices.shape[1] - int(drop.sum(axis=1).max())
        # A stable sort of the keep flags moves the kept entries to the front, order intact.
        order = np.argsort(drop, axis=1, kind="stable")[:, :width]
        return CandidateLists(np.take_along_axis(self.indices, order, 1), np.take_along_axis(self.values, order, 1))

    def to_dense(self, num_gallery: int) -> np.ndarray:
        """(Nq, Ng) distances; gallery items outside a query's list rank last (+inf)."""
        dense = np.full((self.indices.shape[0], num_gallery), np.inf, dtype=np.float32)
        np.put_along_axis(dense, self.indices, self.values.astype(np.float32), axis=1)
        return dense


def save_candidate_sets(path: str | Path, sets: Mapping[str, CandidateLists]) -> None:
    """One ``.npz`` (no pickles) of named lists, e.g. 'raw', 'reranked', 'oof0_raw'."""
    arrays: dict[str, np.ndarray] = {}
    for name, lists in sets.items():
        arrays[f"{name}.indices"] = lists.indices.astype(np.int64)
        arrays[f"{name}.values"] = lists.values.astype(np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_candidate_sets(path: str | Path) -> dict[str, CandidateLists]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing (run the stage that writes it first)")
    with np.load(path, allow_pickle=False) as data:
        names = sorted({key.rsplit(".", 1)[0] for key in data.files})
        try:
            return {name: CandidateLists(data[f"{name}.indices"], data[f"{name}.values"]) for name in names}
        except KeyError as error:
            raise DataError(f"{path}: incomplete candidate set {error}") from error


def named_set(sets: Mapping[str, CandidateLists], name: str, path: str | Path) -> CandidateLists:
    """The lists called ``name`` of the file ``path`` was read from; a clear error when absent."""
    if name not in sets:
        raise DataError(f"{path}: no '{name}' lists (were the params changed since it was written?): rerun the stage that writes it")
    return sets[name]
