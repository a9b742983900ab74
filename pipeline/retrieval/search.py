"""Nearest-neighbour search: faiss (GPU when faiss-gpu and a GPU are present) or an exact torch path."""

from __future__ import annotations

import importlib
from typing import Any, Literal

import numpy as np

from pipeline.core.errors import ConfigError, DataError
from pipeline.retrieval.validate import check_features, check_k, check_pair

Metric = Literal["cosine", "euclidean"]
Backend = Literal["auto", "faiss", "torch"]

# Rows per block on the exact paths: bounds the (rows x gallery) distance block in memory.
_BLOCK_ELEMENTS = 1 << 25


def unit_rows(name: str, x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); an all-zero row, which has no direction, is an error."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        row = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise DataError(f"{name}: row {row} is all zeros; cosine distance is undefined")
    return (x / norms).astype(np.float32)


def _prepare(query: Any, gallery: Any, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Checked features as the search works on them: float32, unit rows for cosine."""
    q, g = check_pair(query, gallery)
    if metric not in ("cosine", "euclidean"):
        raise ConfigError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if metric == "cosine":
        return unit_rows("query", q), unit_rows("gallery", g)
    return np.ascontiguousarray(q, dtype=np.float32), np.ascontiguousarray(g, dtype=np.float32)


def _faiss() -> Any | None:
    try:
        return importlib.import_module("faiss")
    except ImportError:
        return None


def _search_faiss(faiss: Any, q: np.ndarray, g: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    dim = g.shape[1]
    index = faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim)
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(np.ascontiguousarray(g))
    scores, idx = index.search(np.ascontiguousarray(q), k)
    if metric == "cosine":
        dist = 1.0 - scores
    else:  # IndexFlatL2 returns squared distances
        dist = np.sqrt(np.maximum(scores, 0.0))
    return idx.astype(np.int64), dist.astype(np.float32)


def _search_torch(q: np.ndarray, g: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    gt = torch.from_numpy(g).to(device)
    g_sq = (gt * gt).sum(1)
    rows = max(1, _BLOCK_ELEMENTS // g.shape[0])
    idx = np.empty((q.shape[0], k), np.int64)
    dist = np.empty((q.shape[0], k), np.float32)
    for start in range(0, q.shape[0], rows):
        qt = torch.from_numpy(q[start:start + rows]).to(device)
        block = _torch_distance(qt, gt, g_sq, metric)
        values, order = torch.topk(block, k, dim=1, largest=False, sorted=True)
        idx[start:start + rows] = order.cpu().numpy()
        dist[start:start + rows] = values.cpu().numpy()
    return idx, dist


def _torch_distance(qt: Any, gt: Any, g_sq: Any, metric: str) -> Any:
    if metric == "cosine":
        return 1.0 - qt @ gt.T
    sq = (qt * qt).sum(1, keepdim=True) + g_sq[None, :] - 2.0 * (qt @ gt.T)
    return sq.clamp_(min=0.0).sqrt_()


def search_topk(
    query: np.ndarray,
    gallery: np.ndarray,
    k: int,
    metric: Metric = "cosine",
    backend: Backend = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest gallery rows of every query row.

    Returns (indices (Nq, k) int64, distances (Nq, k) float32), ascending distance per row.
    Cosine distance is 1 - cos; Euclidean distance is not squared. "auto" uses faiss when it is
    importable (on the GPU with faiss-gpu and a GPU), else the exact chunked torch path.
    """
    q, g = _prepare(query, gallery, metric)
    check_k(k, g.shape[0], "search_topk (gallery size)")
    if backend not in ("auto", "faiss", "torch"):
        raise ConfigError(f"search backend must be 'auto', 'faiss' or 'torch', got {backend!r}")
    faiss = _faiss() if backend in ("auto", "faiss") else None
    if backend == "faiss" and faiss is None:
        raise ConfigError("search backend 'faiss' asked for, but faiss is not installed")
    if faiss is not None:
        return _search_faiss(faiss, q, g, int(k), metric)
    return _search_torch(q, g, int(k), metric)


def pairwise_distance(query: np.ndarray, gallery: np.ndarray, metric: Metric = "cosine") -> np.ndarray:
    """Dense (Nq, Ng) float32 distances, same conventions as ``search_topk``."""
    q, g = _prepare(query, gallery, metric)
    if metric == "cosine":
        return (1.0 - q @ g.T).astype(np.float32)
    # float64 for the subtraction: |q|^2 + |g|^2 - 2 q.g cancels badly near zero in float32.
    q64, g64 = q.astype(np.float64), g.astype(np.float64)
    sq = (q64 * q64).sum(1)[:, None] + (g64 * g64).sum(1)[None, :] - 2.0 * (q64 @ g64.T)
    return np.sqrt(np.maximum(sq, 0.0)).astype(np.float32)


def rank_from_distance(dist: np.ndarray, k: int) -> np.ndarray:
    """(Nq, k) int64 gallery indices by ascending distance; ties broken by the lower gallery index."""
    return rank_rows(check_features("distance matrix", dist), k)


def rank_rows(d: np.ndarray, k: int) -> np.ndarray:
    """``rank_from_distance`` of a finite 2-D float array that needs no check (one the pipeline made)."""
    check_k(k, d.shape[1], "rank_from_distance (gallery size)")
    rows_per_block = max(1, _BLOCK_ELEMENTS // d.shape[1])
    out = np.empty((d.shape[0], k), np.int64)
    for start in range(0, d.shape[0], rows_per_block):
        block = d[start:start + rows_per_block]
        if k < block.shape[1]:
            part = np.argpartition(block, k - 1, axis=1)[:, :k]
            kth = np.take_along_axis(block, part, axis=1).max(axis=1)
            # Everything up to the k-th value, ties included, then a (value, index) sort.
            rows, cols = np.nonzero(block <= kth[:, None])
        else:
            rows, cols = np.divmod(np.arange(block.size), block.shape[1])
        order = np.lexsort((cols, block[rows, cols], rows))
        rows, cols = rows[order], cols[order]
        first = np.searchsorted(rows, np.arange(block.shape[0]))
        out[start:start + block.shape[0]] = cols[first[:, None] + np.arange(k)[None, :]]
    return out
