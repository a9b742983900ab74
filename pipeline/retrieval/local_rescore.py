"""Global + AlignedReID local distance on candidate lists (the paper's optional retrieval mode).

The aligned local distance is computed only for the (query, candidate) pairs of the lists,
in batches of pairs, each batch one vectorised shortest-path pass (pipeline/retrieval/aligned.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from pipeline.core.errors import DataError
from pipeline.retrieval.candidates import CandidateLists
from pipeline.retrieval.aligned import shortest_path, unit_element_distances

PAIRS_PER_BATCH = 16384  # gathered gallery stripes in flight: ~70 MB at 8 stripes x 128


@torch.inference_mode()
def candidate_local_distances(
    query_local: np.ndarray, gallery_local: np.ndarray, indices: np.ndarray, batch: int = PAIRS_PER_BATCH
) -> np.ndarray:
    """(Nq, C) aligned local distance of each query to each of its candidates ``indices`` (Nq, C).

    Stripes are normalised once up front; each batch of query rows takes the dot products of a
    query's stripes with all its candidates' stripes in one matrix product, then one
    shortest-path pass over all the batch's pairs.
    """
    if query_local.ndim != 3 or gallery_local.ndim != 3 or query_local.shape[1:] != gallery_local.shape[1:]:
        raise DataError(
            f"local features of queries {query_local.shape} and gallery {gallery_local.shape} "
            "must both be (N, stripes, D) with the same stripes and D"
        )
    num_query, num_candidates = indices.shape
    stripes, dim = query_local.shape[1:]
    q = F.normalize(torch.from_numpy(np.ascontiguousarray(query_local, dtype=np.float32)), dim=-1)
    g = F.normalize(torch.from_numpy(np.ascontiguousarray(gallery_local, dtype=np.float32)), dim=-1)
    candidates = torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64))
    out = np.empty((num_query, num_candidates), dtype=np.float32)
    rows_per_batch = max(1, batch // max(num_candidates, 1))
    for start in range(0, num_query, rows_per_batch):
        rows = slice(start, start + rows_per_batch)
        gathered = g[candidates[rows]].reshape(-1, num_candidates * stripes, dim)  # (Qb, C*T, D)
        dots = torch.bmm(gathered, q[rows].transpose(1, 2))  # (Qb, C*T, S)
        dots = dots.view(-1, num_candidates, stripes, stripes).transpose(2, 3).reshape(-1, stripes, stripes)
        out[rows] = shortest_path(unit_element_distances(dots)).view(-1, num_candidates).numpy()
    return out


def add_local_distance(lists: CandidateLists, query_local: np.ndarray, gallery_local: np.ndarray, weight: float) -> CandidateLists:
    """The lists re-sorted by their distance + ``weight`` x the aligned local distance (ascending)."""
    combined = lists.values + weight * candidate_local_distances(query_local, gallery_local, lists.indices)
    order = np.argsort(combined, axis=1, kind="stable")
    return CandidateLists(np.take_along_axis(lists.indices, order, 1), np.take_along_axis(combined, order, 1).astype(np.float32))
