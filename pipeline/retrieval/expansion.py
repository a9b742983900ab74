"""Query expansion (average QE, alpha-QE) and database-side augmentation (DBA).

Average QE (Chum et al., 2007): q' = normalise(q + sum of its k nearest gallery features).
alpha-QE (Radenovic et al., 2018): the neighbours are weighted by max(cos, 0) ** alpha, the
query itself by 1 (its own cosine). DBA applies the same to every gallery item against the
rest of the gallery (itself excluded from its neighbours). Neighbours by cosine similarity.
All return L2-normalised float32 features.
"""

from __future__ import annotations

import numpy as np

from pipeline.core.errors import ConfigError
from pipeline.retrieval.search import search_topk, unit_rows
from pipeline.retrieval.validate import check_features, check_k, check_pair


def _expand(features: np.ndarray, gallery: np.ndarray, idx: np.ndarray, cos: np.ndarray, alpha: float | None) -> np.ndarray:
    weights = np.ones_like(cos) if alpha is None else np.maximum(cos, 0.0) ** alpha
    unit = _normalise(features)
    mixed = unit + np.einsum("nk,nkd->nd", weights, _normalise(gallery)[idx])
    return _normalise(mixed)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _check_alpha(alpha: float) -> None:
    if not np.isfinite(alpha) or alpha < 0:
        raise ConfigError(f"qe alpha must be a finite number >= 0, got {alpha!r}")


def average_query_expansion(query: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """Each query replaced by the normalised sum of itself and its k nearest gallery features."""
    return _expand_queries(*check_pair(query, gallery), k, None)


def alpha_query_expansion(query: np.ndarray, gallery: np.ndarray, k: int, alpha: float = 3.0) -> np.ndarray:
    """alpha-QE: neighbours weighted by max(cos, 0) ** alpha."""
    _check_alpha(alpha)
    return _expand_queries(*check_pair(query, gallery), k, alpha)


def _expand_queries(q: np.ndarray, g: np.ndarray, k: int, alpha: float | None) -> np.ndarray:
    idx, dist = search_topk(q, g, k)
    return _expand(q, g, idx, 1.0 - dist, alpha)


def database_augmentation(gallery: np.ndarray, k: int, alpha: float | None = None) -> np.ndarray:
    """DBA: each gallery item expanded by its k nearest other gallery items (alpha: as alpha-QE)."""
    g = check_features("gallery", gallery)
    check_k(k, g.shape[0] - 1, "database augmentation (other gallery items)")
    if alpha is not None:
        _check_alpha(alpha)
    unit = unit_rows("gallery", g)
    idx, dist = search_topk(unit, unit, k + 1)
    # Drop each row's own index (usually first; a duplicate may precede it), else the last column.
    keep = idx != np.arange(g.shape[0])[:, None]
    keep[keep.all(axis=1), -1] = False
    idx = idx[keep].reshape(g.shape[0], k)
    cos = 1.0 - dist[keep].reshape(g.shape[0], k)
    return _expand(g, g, idx, cos, alpha)
