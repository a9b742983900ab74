"""k-reciprocal re-ranking against the plain reference in tests/reference_rerank.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError, DataError
from pipeline.retrieval.rerank import k_reciprocal_rerank
from pipeline.retrieval.rerank_sparse import sparse_rerank
from pipeline.retrieval.retrieve import retrieve
from pipeline.retrieval.search import rank_from_distance, search_topk
from pipeline.core.sections import RerankConfig

sys.path.insert(0, str(Path(__file__).parent))
from reference_rerank import euclidean_distances, re_ranking  # noqa: E402


def clustered(n: int, dim: int, clusters: int, seed: int, dtype=np.float32) -> np.ndarray:
    """L2-normalised points around random centres: continuous, so no tied distances."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)


def reference(q: np.ndarray, g: np.ndarray, k1: int = 20, k2: int = 6, lam: float = 0.3) -> np.ndarray:
    return re_ranking(euclidean_distances(q, g), euclidean_distances(q, q), euclidean_distances(g, g), k1, k2, lam)


CASES = [  # (n, num_query, dim, clusters, seed, k1, k2, lambda)
    (240, 80, 16, 12, 0, 20, 6, 0.3),
    (300, 150, 32, 20, 1, 20, 6, 0.3),
    (200, 60, 8, 6, 2, 7, 1, 0.5),  # odd k1 (round(3.5) = 4), no local query expansion
    (260, 100, 24, 30, 3, 12, 3, 0.0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_exact_matches_reference(case, dtype):
    n, nq, dim, clusters, seed, k1, k2, lam = case
    x = clustered(n, dim, clusters, seed, dtype)
    expected = reference(x[:nq], x[nq:], k1, k2, lam)
    got = k_reciprocal_rerank(x[:nq], x[nq:], k1, k2, lam, xp="numpy")
    assert got.shape == (nq, n - nq) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_exact_torch_backend_matches_reference():
    x = clustered(260, 16, 15, 4)
    expected = reference(x[:100], x[100:])
    np.testing.assert_allclose(k_reciprocal_rerank(x[:100], x[100:], xp="torch", device="cpu"), expected, atol=1e-4, rtol=0)


def test_unnormalised_features_match_reference():
    x = clustered(220, 12, 10, 5) * np.random.default_rng(5).uniform(0.5, 3.0, (220, 1)).astype(np.float32)
    np.testing.assert_allclose(k_reciprocal_rerank(x[:70], x[70:], xp="numpy"), reference(x[:70], x[70:]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("xp", ["numpy", "torch"])
def test_half_precision_within_stated_tolerance(xp):
    x = clustered(300, 32, 20, 1)
    expected = reference(x[:150], x[150:])
    got = k_reciprocal_rerank(x[:150], x[150:], xp=xp, device="cpu", half=True)
    np.testing.assert_allclose(got, expected, atol=2e-3, rtol=0)  # float16 V: ~2^-11 relative


def test_sparse_agrees_with_exact():
    x = clustered(600, 32, 40, 6)
    q, g = x[:200], x[200:]
    full = k_reciprocal_rerank(q, g, xp="numpy")
    idx, dist = sparse_rerank(q, g, candidates=40, xp="numpy")
    assert idx.shape == dist.shape == (200, 40) and idx.dtype == np.int64
    assert (np.diff(dist, axis=1) >= 0).all()
    # Exact mode's best 40, with exact mode's distances (same neighbour lists in both modes).
    np.testing.assert_array_equal(idx, rank_from_distance(full, 40))
    np.testing.assert_allclose(dist, np.take_along_axis(full, idx, 1), atol=1e-5)


def test_sparse_with_no_shared_support():
    # Queries and gallery in far-apart groups, k1 = k2 = 1: no query shares V support with any
    # gallery item, so every Jaccard distance is 1 and the order is the original one.
    rng = np.random.default_rng(7)
    q = np.hstack([np.ones((30, 1)), 0.2 * rng.normal(size=(30, 4))]).astype(np.float32)
    g = np.hstack([-np.ones((50, 1)), 0.2 * rng.normal(size=(50, 4))]).astype(np.float32)
    idx, dist = sparse_rerank(q, g, 1, 1, 0.3, candidates=5, xp="numpy")
    full = k_reciprocal_rerank(q, g, 1, 1, 0.3, xp="numpy")
    np.testing.assert_array_equal(idx, rank_from_distance(full, 5))
    np.testing.assert_array_equal(idx, search_topk(q, g, 5, metric="euclidean", backend="torch")[0])
    np.testing.assert_allclose(dist, np.take_along_axis(full, idx, 1), atol=1e-6)
    assert (dist >= 0.7).all()


def test_retrieve_modes():
    x = clustered(300, 16, 20, 8)
    q, g = x[:100], x[100:]
    lists = retrieve(q, g, RerankConfig(candidates=10))
    idx, dist = lists.indices, lists.values
    full = k_reciprocal_rerank(q, g)
    np.testing.assert_array_equal(idx, rank_from_distance(full, 10))
    np.testing.assert_allclose(dist, np.take_along_axis(full, idx, 1))
    plain = retrieve(q, g, RerankConfig(enabled=False, candidates=5))
    expected_idx, expected_dist = search_topk(q, g, 5)
    np.testing.assert_array_equal(plain.indices, expected_idx)
    np.testing.assert_allclose(plain.values, expected_dist)
    sparse = retrieve(q, g, RerankConfig(mode="sparse", candidates=10, query_expansion="alpha", dba_k=2))
    assert sparse.indices.shape == (100, 10)


def bad(x: np.ndarray, row: int) -> np.ndarray:
    x = x.copy()
    x[row, 1] = np.nan
    return x


@pytest.mark.parametrize("fn", [k_reciprocal_rerank, sparse_rerank])
def test_bad_inputs(fn):
    x = clustered(120, 8, 6, 9)
    q, g = x[:40], x[40:]
    with pytest.raises(DataError, match="query: row 3"):
        fn(bad(q, 3), g)
    with pytest.raises(DataError, match="gallery: row 7"):
        fn(q, np.where(np.arange(80)[:, None] == 7, np.inf, g))
    with pytest.raises(DataError, match="dimensions"):
        fn(q, g[:, :5])
    with pytest.raises(DataError, match="empty"):
        fn(q[:0], g)
    with pytest.raises(DataError, match="empty"):
        fn(q, g[:0])
    with pytest.raises(DataError, match="larger than"):
        fn(q[:5], g[:10])  # k1 + 1 = 21 > 15 items
    with pytest.raises(ConfigError, match="k1"):
        fn(q, g, 0)
    with pytest.raises(ConfigError, match="lambda"):
        fn(q, g, 20, 6, 1.5)
    with pytest.raises(DataError, match="larger than"):
        sparse_rerank(q, g, candidates=81)


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="k2"):
        from_mapping(RerankConfig, {"k2": 0}, "params.yaml", "rerank")
    with pytest.raises(ConfigError, match="unknown key 'rerank.k3'"):
        from_mapping(RerankConfig, {"k3": 1}, "params.yaml", "rerank")
    with pytest.raises(ConfigError, match="mode"):
        from_mapping(RerankConfig, {"mode": "fast"}, "params.yaml", "rerank")
    config = from_mapping(RerankConfig, {"mode": "sparse", "candidates": 50}, "params.yaml", "rerank")
    assert config.mode == "sparse" and config.k1 == 20 and config.lambda_value == 0.3
    x = clustered(60, 8, 4, 10)
    with pytest.raises(DataError, match="candidates"):
        retrieve(x[:10], x[10:], RerankConfig(candidates=51))
