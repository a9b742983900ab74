"""Query-to-gallery distances as the rerank stage stores them and the fuse stage reads them.

Dense: a full (Nq, Ng) matrix. Sparse: (Nq, C) candidate lists, ``indices`` into the
gallery with their ascending ``values``, for galleries where Nq x Ng does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import DataError
from pipeline.io_utils import atomic_path
from pipeline.retrieval.search import rank_from_distance


@dataclass(frozen=True)
class Distances:
    values: np.ndarray
    indices: np.ndarray | None = None  # None: dense

    @property
    def dense(self) -> bool:
        return self.indices is None

    def ranking(self, k: int) -> np.ndarray:
        """Gallery indices (Nq, k), best first."""
        if self.indices is None:
            return rank_from_distance(self.values, k)
        if self.indices.shape[1] < k:
            raise DataError(f"only {self.indices.shape[1]} candidates per query, {k} asked for")
        order = np.argsort(self.values, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(self.indices, order, axis=1)


def save_distance_sets(path: str | Path, sets: Mapping[str, Distances]) -> None:
    """One ``.npz`` (no pickles) holding named distance sets, e.g. 'raw', 'reranked', 'oof0_raw'."""
    arrays: dict[str, np.ndarray] = {}
    for name, distances in sets.items():
        arrays[f"{name}.values"] = distances.values.astype(np.float32)
        if distances.indices is not None:
            arrays[f"{name}.indices"] = distances.indices.astype(np.int64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_distance_sets(path: str | Path) -> dict[str, Distances]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing (run the rerank stage first)")
    with np.load(path, allow_pickle=False) as data:
        names = sorted({key.rsplit(".", 1)[0] for key in data.files})
        return {
            name: Distances(data[f"{name}.values"], data[f"{name}.indices"] if f"{name}.indices" in data.files else None)
            for name in names
        }
