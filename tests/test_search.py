"""search_topk (faiss and torch) and pairwise_distance against brute-force numpy."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import ConfigError, DataError
from pipeline.retrieval.search import pairwise_distance, rank_from_distance, search_topk
from pipeline.retrieval.validate import check_same_ids


def brute(q: np.ndarray, g: np.ndarray, metric: str) -> np.ndarray:
    q, g = q.astype(np.float64), g.astype(np.float64)
    if metric == "cosine":
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        gn = g / np.linalg.norm(g, axis=1, keepdims=True)
        return 1.0 - qn @ gn.T
    return np.sqrt(((q[:, None, :] - g[None, :, :]) ** 2).sum(-1))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(37, 12)).astype(np.float32), rng.normal(size=(150, 12)).astype(np.float32)


@pytest.mark.parametrize("backend", ["faiss", "torch", "auto"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_search_matches_brute_force(data, backend, metric):
    q, g = data
    idx, dist = search_topk(q, g, 7, metric=metric, backend=backend)
    assert idx.dtype == np.int64 and dist.dtype == np.float32 and idx.shape == (37, 7)
    full = brute(q, g, metric)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :7])
    np.testing.assert_allclose(dist, np.take_along_axis(full, idx, 1), atol=1e-4)
    assert (np.diff(dist, axis=1) >= 0).all()


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_pairwise_distance(data, metric):
    q, g = data
    d = pairwise_distance(q, g, metric)
    assert d.dtype == np.float32 and d.shape == (37, 150)
    np.testing.assert_allclose(d, brute(q, g, metric), atol=1e-5)


def test_rank_from_distance_breaks_ties_by_index():
    d = np.array([[0.5, 0.1, 0.5, 0.1, 0.9], [0.3, 0.3, 0.3, 0.3, 0.3]], np.float32)
    np.testing.assert_array_equal(rank_from_distance(d, 3), [[1, 3, 0], [0, 1, 2]])
    np.testing.assert_array_equal(rank_from_distance(d, 5), [[1, 3, 0, 2, 4], [0, 1, 2, 3, 4]])
    rng = np.random.default_rng(1)
    big = rng.integers(0, 6, size=(50, 40)).astype(np.float32)  # many ties
    np.testing.assert_array_equal(rank_from_distance(big, 8), np.argsort(big, axis=1, kind="stable")[:, :8])


def test_bad_inputs(data):
    q, g = data
    with pytest.raises(DataError, match="larger than the 150"):
        search_topk(q, g, 151)
    with pytest.raises(DataError, match="query: row 2"):
        search_topk(np.where(np.arange(37)[:, None] == 2, np.nan, q), g, 3)
    with pytest.raises(DataError, match="dimensions"):
        search_topk(q, g[:, :4], 3)
    with pytest.raises(DataError, match="empty"):
        search_topk(q[:0], g, 3)
    with pytest.raises(DataError, match="2-D"):
        search_topk(q[0], g, 3)
    with pytest.raises(DataError, match="gallery: row 4 is all zeros"):
        search_topk(q, np.where(np.arange(150)[:, None] == 4, 0.0, g), 3)
    with pytest.raises(ConfigError, match="metric"):
        search_topk(q, g, 3, metric="manhattan")
    with pytest.raises(DataError, match="row 1"):
        rank_from_distance(np.array([[0.1, 0.2], [np.inf, 0.0]]), 1)


def test_check_same_ids():
    check_same_ids({"a": ["x.jpg", "y.jpg"], "b": ["x.jpg", "y.jpg"]}, "query ids")
    with pytest.raises(DataError, match="model 'b' row 1 is 'z.jpg'"):
        check_same_ids({"a": ["x.jpg", "y.jpg"], "b": ["x.jpg", "z.jpg"]}, "query ids")
    with pytest.raises(DataError, match="has 1 ids"):
        check_same_ids({"a": ["x.jpg", "y.jpg"], "b": ["x.jpg"]}, "query ids")
