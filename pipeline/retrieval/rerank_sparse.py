"""Sparse k-reciprocal re-ranking: memory O(N * k) for galleries where an N x N matrix does not fit.

Same algorithm and code as exact mode (see kreciprocal), with two differences: no dense
distance matrix is kept, and the final distance is computed only for the pairs that can make a
query's best ``candidates``: those whose V rows share support (Jaccard < 1), plus the query's
``candidates`` nearest gallery items by original distance (every other pair has Jaccard 1 and
a larger original distance, so it ranks below those). The neighbour lists,
row maxima and candidates come from one streamed pass over (rows x N) distance blocks rather
than from ``search_topk``: the published normalisation needs every row's largest distance,
which a k-NN search does not give, and one pass costs one N x N product instead of two.
Past a few hundred thousand images that product is the cost (an hour at 1M, 256-d, on 2
cores): ``ivf`` takes the lists from faiss IVF searches instead (pipeline/retrieval/ann.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.retrieval import kreciprocal
from pipeline.retrieval.ann import IVFSearch
from pipeline.retrieval.rerank import prepare_inputs, reciprocal_graph
from pipeline.retrieval.validate import check_k


def sparse_rerank(
    query: np.ndarray,
    gallery: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    candidates: int = 100,
    *,
    xp: str | Any | None = "auto",
    device: str = "auto",
    half: bool = False,
    ivf: IVFSearch | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-ranked candidate lists: (gallery indices (Nq, candidates) int64, distances float32).

    Each row is sorted by ascending final distance (ties: lower gallery index). The lists are
    exact mode's best ``candidates`` with exact mode's distances, given the same neighbour
    lists (both modes share them; see kreciprocal.neighbour_pass). Memory grows as N * (k +
    candidates + common-support pairs per query), never N^2. Arguments as for
    ``k_reciprocal_rerank``; ``ivf``: the neighbour lists, candidates and row maxima from faiss
    IVF searches and a column sample instead (pipeline/retrieval/ann.py), for sizes where the
    exact pass's N x N product is too slow: the lists are then exact mode's on those neighbours.
    """
    q, g = prepare_inputs(query, gallery, k1, k2, lambda_value)
    check_k(candidates, g.shape[0], "sparse re-ranking: candidates against the gallery size")
    graph = reciprocal_graph(q, g, k1, k2, xp=xp, device=device, half=half, gallery_candidates=candidates, ivf=ivf)
    ops, found, pair_distance, num_query = graph.ops, graph.found, graph.pair_distance, q.shape[0]
    # Pairs with no common V support have Jaccard distance 1, so their final distance grows
    # with the original one: the nearest ``candidates`` by original distance cover them all.
    # Adding every pair with common support makes the best ``candidates`` those of exact mode.
    support, overlap = kreciprocal.overlap_nonzero(ops, graph.v, num_query)
    del graph  # frees V
    # A sentinel first entry keeps the look-up below valid when no pair shares support.
    support = ops.concat([ops.zeros(1, "int64") - 1, support])
    overlap = ops.concat([ops.zeros(1, "float32"), overlap])
    num_gallery = g.shape[0]
    nearest = (ops.arange(num_query)[:, None] * num_gallery + found.gallery_candidates).reshape(-1)
    keys = ops.unique(ops.concat([support, nearest]))
    pos = ops.searchsorted(support, keys)
    pos = ops.where(pos < support.shape[0], pos, support.shape[0] - 1)
    shared = ops.where(support[pos] == keys, overlap[pos], 0.0)
    rows, cols = keys // num_gallery, keys % num_gallery
    original = ops.astype(pair_distance(rows, cols + num_query), "float32")
    final = ops.to_numpy(kreciprocal.final_distance(shared, original, lambda_value))
    rows, cols = ops.to_numpy(rows), ops.to_numpy(cols)
    # By query, then distance, then gallery index: ``keys`` is sorted by (query, gallery) and
    # final <= 1, so a stable sort of query * 4 + final does it (float64 resolves float32 steps).
    order = np.argsort(rows * 4.0 + final.astype(np.float64), kind="stable")
    first = np.searchsorted(rows[order], np.arange(num_query))
    take = order[first[:, None] + np.arange(candidates)[None, :]]
    return cols[take].astype(np.int64), final[take].astype(np.float32)
