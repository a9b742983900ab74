"""Global + AlignedReID local distance on candidate lists (the paper's optional retrieval mode).

The aligned local distance is computed only for the (query, candidate) pairs of the lists,
in batches of pairs, each batch one vectorised shortest-path pass (pipeline/losses/aligned.py).
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.errors import DataError
from pipeline.losses.aligned import aligned_distance

PAIRS_PER_BATCH = 8192  # (2 x pairs x stripes x D) floats in flight: ~70 MB at 8 stripes x 128


@torch.inference_mode()
def candidate_local_distances(
    query_local: np.ndarray, gallery_local: np.ndarray, indices: np.ndarray, batch: int = PAIRS_PER_BATCH
) -> np.ndarray:
    """(Nq, C) aligned local distance of each query to each of its candidates ``indices`` (Nq, C)."""
    if query_local.ndim != 3 or gallery_local.ndim != 3 or query_local.shape[1:] != gallery_local.shape[1:]:
        raise DataError(
            f"local features of queries {query_local.shape} and gallery {gallery_local.shape} "
            "must both be (N, stripes, D) with the same stripes and D"
        )
    rows = np.repeat(np.arange(indices.shape[0]), indices.shape[1])
    cols = indices.reshape(-1)
    q, g = torch.from_numpy(np.ascontiguousarray(query_local)), torch.from_numpy(np.ascontiguousarray(gallery_local))
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), batch):
        r, c = rows[start : start + batch], cols[start : start + batch]
        out[start : start + batch] = aligned_distance(q[r], g[c]).numpy()
    return out.reshape(indices.shape)


def add_local_distance(
    indices: np.ndarray, values: np.ndarray, query_local: np.ndarray, gallery_local: np.ndarray, weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """The lists re-sorted by ``values + weight * local distance``: (indices, distances), ascending."""
    combined = values + weight * candidate_local_distances(query_local, gallery_local, indices)
    order = np.argsort(combined, axis=1, kind="stable")
    return np.take_along_axis(indices, order, 1), np.take_along_axis(combined, order, 1).astype(np.float32)
