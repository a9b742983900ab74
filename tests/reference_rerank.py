"""A plain reference of k-reciprocal re-ranking (Zhong et al., CVPR 2017), for tests and benchmarks.

Written from the paper and the semantics of the widely used public numpy implementation
(re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)): one row at a time, dense
matrices, no tricks. Inputs are Euclidean (not squared) distances; the algorithm squares them
and divides each column by its maximum. Ranking is done in float64 (the public code uses
float32, where near-tied neighbours may swap); V is float32 as there.
"""

from __future__ import annotations

import numpy as np


def euclidean_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 Euclidean distances; the Gram form (fast enough for N = 10k), zero on identical rows."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    sq = np.maximum(sq, 0.0)
    if a is b or (a.shape == b.shape and np.array_equal(a, b)):
        np.fill_diagonal(sq, 0.0)
    return np.sqrt(sq)


def _k_reciprocal(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    """The neighbours j among the k + 1 nearest of i that also have i among their k + 1 nearest."""
    forward = rank[i, : k + 1]
    backward = rank[forward, : k + 1]
    return forward[np.any(backward == i, axis=1)]


def re_ranking(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    num_query = q_g_dist.shape[0]
    original = np.block([[q_q_dist, q_g_dist], [q_g_dist.T, g_g_dist]]).astype(np.float64) ** 2
    original = (original / original.max(axis=0)).T
    n = original.shape[0]
    rank = np.argsort(original, axis=1)
    half = int(np.around(k1 / 2.0))

    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        reciprocal = _k_reciprocal(rank, i, k1)
        expanded = list(reciprocal)
        for candidate in reciprocal:
            candidate_set = _k_reciprocal(rank, candidate, half)
            if len(np.intersect1d(candidate_set, reciprocal)) > 2.0 / 3.0 * len(candidate_set):
                expanded.extend(candidate_set)
        members = np.unique(expanded)
        weight = np.exp(-original[i, members])
        v[i, members] = weight / weight.sum()

    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)]).astype(np.float32)

    postings = [np.flatnonzero(v[:, j]) for j in range(n)]  # rows where column j is non-zero
    jaccard = np.zeros((num_query, n), dtype=np.float32)
    for i in range(num_query):
        overlap = np.zeros(n, dtype=np.float32)
        for j in np.flatnonzero(v[i]):
            rows = postings[j]
            overlap[rows] += np.minimum(v[i, j], v[rows, j])
        jaccard[i] = 1.0 - overlap / (2.0 - overlap)

    final = jaccard * (1.0 - lambda_value) + original[:num_query] * lambda_value
    return final[:, num_query:].astype(np.float32)
