"""Fusing several models' candidate lists: weighted distances, rank voting, weight tuning.

Distance fusion normalises per model and per query row, min-max over that row's distances,
d' = (d - min) / (max - min) (0 where the row is constant), so every model's row spans [0, 1]
and the weights alone set each model's say. The weights are divided by their sum.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from pipeline.core.errors import ConfigError, DataError
from pipeline.retrieval.candidates import CandidateLists
from pipeline.retrieval.validate import check_features

def _check_weights(weights: Sequence[float], count: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != count:
        raise ConfigError(f"fusion: {count} models but {w.size} weights ({list(np.ravel(w))})")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(f"fusion: weights must be finite, >= 0 and not all zero, got {list(w)}")
    return w / w.sum()


def rank_voting(rankings: Sequence[np.ndarray], weights: Sequence[float], num_gallery: int) -> np.ndarray:
    """Each model gives weight / rank to the items it ranks (1 for rank 1, 1/2 for rank 2, ...).

    Returns (Nq, k) gallery indices, k the longest input list, by descending summed score; ties
    go to the lower gallery index. Memory O(Nq * models * k): no (Nq, Ng) score matrix.
    """
    if len(rankings) == 0:
        raise DataError("rank voting: no rankings given")
    w = _check_weights(weights, len(rankings))
    lists = [np.asarray(r) for r in rankings]
    num_query = lists[0].shape[0] if lists[0].ndim == 2 else -1
    for m, r in enumerate(lists):
        if r.ndim != 2 or r.shape[0] != num_query or r.shape[1] == 0:
            raise DataError(f"rank voting: model {m} ranking has shape {r.shape}; expected ({num_query}, k)")
        if not np.issubdtype(r.dtype, np.integer) or r.min() < 0 or r.max() >= num_gallery:
            raise DataError(f"rank voting: model {m} has gallery indices outside [0, {num_gallery})")
        sorted_rows = np.sort(r, axis=1)
        dup = (sorted_rows[:, 1:] == sorted_rows[:, :-1]).any(axis=1)
        if dup.any():
            raise DataError(f"rank voting: model {m} row {int(np.flatnonzero(dup)[0])} lists an item twice")
    k = max(r.shape[1] for r in lists)
    query = np.concatenate([np.repeat(np.arange(num_query), r.shape[1]) for r in lists])
    item = np.concatenate([r.reshape(-1) for r in lists])
    score = np.concatenate([np.tile(wt / np.arange(1, r.shape[1] + 1), num_query) for wt, r in zip(w, lists)])
    key, inverse = np.unique(query * num_gallery + item, return_inverse=True)
    total = np.bincount(inverse, score, key.shape[0])
    return _top_per_query(key // num_gallery, key % num_gallery, -total, num_query, k)


def _top_per_query(query: np.ndarray, item: np.ndarray, cost: np.ndarray, num_query: int, k: int) -> np.ndarray:
    """The k lowest-cost items of every query (ties: lower item index); each query has >= k."""
    order = np.lexsort((item, cost, query))
    query, item = query[order], item[order]
    first = np.searchsorted(query, np.arange(num_query))
    return item[first[:, None] + np.arange(k)[None, :]]


def fuse_candidate_lists(
    lists: Sequence[CandidateLists],
    weights: Sequence[float],
    fill: str = "row_max",
) -> CandidateLists:
    """Fuse per-model candidate lists (indices (Nq, k_m), distances (Nq, k_m)) of the same queries.

    Candidates are the union of the models' lists; a model that did not list an item gets
    ``fill``: "row_max" = that model's largest candidate distance for that query. Each model's
    row is then min-max normalised over the union and the weighted sum taken. Returns the union's
    best k (k = the longest input list) with their fused distances, ascending.
    """
    if len(lists) == 0:
        raise DataError("fusion: no candidate lists given")
    if fill != "row_max":
        raise ConfigError(f"fusion: fill must be 'row_max', got {fill!r}")
    w = _check_weights(weights, len(lists))
    pairs = []
    for m, candidates in enumerate(lists):
        idx, dist = candidates.indices, check_features(f"candidate distances of model {m}", candidates.values)
        if idx.shape[0] != lists[0].indices.shape[0]:
            raise DataError(f"fusion: model {m} candidate lists have shapes {idx.shape} and {dist.shape}")
        if not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0:
            raise DataError(f"fusion: model {m} has negative or non-integer gallery indices")
        pairs.append((idx.astype(np.int64), dist.astype(np.float64)))
    num_query = pairs[0][0].shape[0]
    width = int(max(idx.max() for idx, _ in pairs)) + 1
    union = np.unique(np.concatenate([(np.arange(num_query)[:, None] * width + idx).ravel() for idx, _ in pairs]))
    query, item = union // width, union % width
    starts = np.searchsorted(query, np.arange(num_query))
    fused = np.zeros(union.shape[0])
    for weight, (idx, dist) in zip(w, pairs):
        keys = (np.arange(num_query)[:, None] * width + idx).ravel()
        order = np.argsort(keys)
        pos = np.searchsorted(keys[order], union)
        pos = np.minimum(pos, keys.size - 1)
        found = keys[order][pos] == union
        value = np.where(found, dist.ravel()[order][pos], dist.max(axis=1)[query])
        low = np.minimum.reduceat(value, starts)[query]
        span = np.maximum.reduceat(value, starts)[query] - low
        fused += weight * np.divide(value - low, span, out=np.zeros_like(value), where=span > 0)
    k = max(idx.shape[1] for idx, _ in pairs)
    best = _top_per_query(query, item, fused, num_query, k)
    lookup = np.searchsorted(union, np.arange(num_query)[:, None] * width + best)
    return CandidateLists(best.astype(np.int64), fused[lookup].astype(np.float32))


def simplex_grid(count: int, step: float) -> list[tuple[float, ...]]:
    """All weight vectors of ``count`` entries, multiples of ``step``, summing to 1."""
    if not 0 < step <= 1 or abs(round(1 / step) - 1 / step) > 1e-9:
        raise ConfigError(f"fusion: grid_step must divide 1 (e.g. 0.1, 0.25), got {step!r}")
    units = round(1 / step)
    return [
        tuple(c / units for c in combo)
        for combo in itertools.product(range(units + 1), repeat=count)
        if sum(combo) == units
    ]


def tune_weights(
    count: int, objective: Callable[[Sequence[float]], float], grid_step: float = 0.1
) -> tuple[list[float], float]:
    """Grid search over the weight simplex of ``count`` models for the highest ``objective(weights)``.

    The objective fuses and scores (e.g. the mean validation score over folds). The first best
    grid point wins ties (the grid is in lexicographic order). Returns (weights, best score).
    """
    best_weights, best_score = [1.0 / count] * count, -np.inf
    for weights in simplex_grid(count, grid_step):
        score = float(objective(weights))
        if score > best_score:
            best_weights, best_score = list(weights), score
    return best_weights, best_score
