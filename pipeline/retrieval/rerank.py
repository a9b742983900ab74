"""Exact k-reciprocal re-ranking (dense output), the k-reciprocal Jaccard distance among one set
of features (what SpCL / MMT cluster), and the input checks both modes share (the knobs:
pipeline.core.sections.RerankConfig)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.retrieval import kreciprocal
from pipeline.retrieval.ann import IVFSearch, ivf_neighbour_pass
from pipeline.retrieval.backend import Array, Ops, get_ops
from pipeline.retrieval.validate import check_features, check_k, check_pair
from pipeline.core.sections import check_rerank_params, rerank_neighbours


def prepare_inputs(query: Any, gallery: Any, k1: int, k2: int, lambda_value: float) -> tuple[np.ndarray, np.ndarray]:
    """Validated knobs and features, for the public entry points."""
    check_rerank_params(k1, k2, lambda_value)
    q, g = check_pair(query, gallery)
    check_k(rerank_neighbours(k1, k2), q.shape[0] + g.shape[0], "re-ranking: k1 + 1 (or k2) against queries + gallery")
    return q, g


def normalised_pair_distance(ops: Ops, x: Array, row_max: Array):
    """pair_distance(rows, cols) for build_v: squared distance over the row maximum."""
    sq_norm = (x * x).sum(1)

    def distance(rows: Array, cols: Array) -> Array:
        return kreciprocal.pair_sqdist(ops, x, sq_norm, rows, cols) / row_max[rows]

    return distance


@dataclass
class ReciprocalGraph:
    """What exact and sparse re-ranking share: the neighbour pass and V of queries + gallery."""

    ops: Ops
    found: kreciprocal.Neighbours
    pair_distance: Callable[[Array, Array], Array]  # row-normalised squared distance of pairs
    v: kreciprocal.SparseRows


def reciprocal_graph(
    q: np.ndarray, g: np.ndarray, k1: int, k2: int, *, xp: str | Any | None, device: str, half: bool,
    keep_original: bool = False, gallery_candidates: int = 0, ivf: IVFSearch | None = None,
) -> ReciprocalGraph:
    """The shared set-up of both modes, on features and knobs ``prepare_inputs`` returned.

    ``keep_original``: keep the dense query x gallery distance (exact mode, in V's dtype);
    ``gallery_candidates``: each query's nearest gallery items by it (sparse mode); ``ivf``:
    take the neighbour lists from faiss IVF searches instead of the exact pass (sparse mode,
    pipeline/retrieval/ann.py).
    """
    ops = get_ops(xp, device)
    store = "float16" if half else "float32"
    width = rerank_neighbours(k1, k2)
    if ivf is None:
        x32, x_exact = stacked_features(ops, q, g, exact_order=not half)
        found = kreciprocal.neighbour_pass(
            ops, x32, x_exact, q.shape[0], width,
            keep_original=store if keep_original else None, gallery_candidates=gallery_candidates,
        )
    else:
        x32, _ = stacked_features(ops, q, g, exact_order=False)
        found = ivf_neighbour_pass(ops, ops.to_numpy(x32), q.shape[0], width, gallery_candidates, ivf)
    pair_distance = normalised_pair_distance(ops, x32, found.row_max)  # V weights: float32 is ample
    return ReciprocalGraph(ops, found, pair_distance, kreciprocal.build_v(ops, found.nbr, k1, k2, pair_distance, store))


def k_reciprocal_rerank(
    query: np.ndarray,
    gallery: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    xp: str | Any | None = "auto",
    device: str = "auto",
    half: bool = False,
) -> np.ndarray:
    """Exact k-reciprocal re-ranking: the (Nq, Ng) float32 final distance of Zhong et al. 2017.

    Distances are ranked in float64 so neighbour order matches a float64 reference exactly
    (float32 rounding swaps near-tied neighbours, which moves the result by more than 1e-4).
    ``half``: rank in float32 and store V and the distance matrix in float16 (sums stay float32);
    agreement with the reference is then about 2e-3. ``xp``/``device``: see backend.get_ops.
    """
    q, g = prepare_inputs(query, gallery, k1, k2, lambda_value)
    graph = reciprocal_graph(q, g, k1, k2, xp=xp, device=device, half=half, keep_original=True)
    final = kreciprocal.final_dense(graph.ops, graph.v, q.shape[0], graph.found.original, lambda_value)
    return graph.ops.to_numpy(final).astype(np.float32, copy=False)


def stacked_features(ops: Ops, q: np.ndarray, g: np.ndarray, exact_order: bool) -> tuple[Array, Array | None]:
    """Queries then gallery, as float32 (for the dense pass) and, for ``exact_order``, float64."""
    x = np.concatenate([q, g])
    x32 = ops.asarray(x.astype(np.float32, copy=False), "float32")
    return x32, ops.asarray(x.astype(np.float64, copy=False), "float64") if exact_order else None


def jaccard_distance(
    features: Any, k1: int = 20, k2: int = 6, *, xp: str | Any | None = "auto", device: str = "auto"
) -> np.ndarray:
    """(N, N) float32 k-reciprocal Jaccard distance among the rows of ``features``, each row both
    a query and a gallery item: the re-ranked distance above at lambda 0, over one set instead
    of queries + gallery (SpCL / MMT cluster the target domain on it). In [0, 1], 0 on the diagonal.
    """
    check_rerank_params(k1, k2, 0.0)
    x = check_features("features", features)
    n, neighbours = x.shape[0], rerank_neighbours(k1, k2)
    check_k(neighbours, n, "Jaccard distance: k1 + 1 (or k2) against the rows")
    graph = reciprocal_graph(x, x[:0], k1, k2, xp=xp, device=device, half=False)
    ops, v = graph.ops, graph.v
    # V twice over (rows N..2N-1 repeat rows 0..N-1): the query x gallery block is then every pair
    nnz = v.rows.shape[0]
    both = kreciprocal.SparseRows(
        ops.concat([v.rows, v.rows + n]), ops.concat([v.cols, v.cols]), ops.concat([v.vals, v.vals]),
        ops.concat([v.row_ptr, v.row_ptr[1:] + nnz]),
    )
    distance = np.maximum(ops.to_numpy(kreciprocal.final_dense(ops, both, n, ops.zeros((n, n), "float32"), 0.0)), 0.0)
    np.fill_diagonal(distance, 0.0)  # float32 sums leave an ulp either side of s = 1 (0 and the diagonal)
    return distance
