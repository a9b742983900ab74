"""IVF neighbour lists for sparse re-ranking (pipeline/retrieval/ann.py) against brute force:
an exhaustive probe is the exact pass, short lists are refilled, the sampled row maximum is a
lower bound that is exact when the sample holds every column, and sparse re-ranking on exhaustive
IVF lists is sparse re-ranking on the exact ones."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.core.errors import ConfigError
from pipeline.core.sections import RerankConfig
from pipeline.retrieval import kreciprocal
from pipeline.retrieval.ann import IVFSearch, ivf_neighbour_pass, sampled_row_max, self_first
from pipeline.retrieval.backend import get_ops
from pipeline.retrieval.rerank_sparse import sparse_rerank
from pipeline.retrieval.retrieve import retrieve
from test_rerank import clustered


def brute_sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(np.float64)[:, None, :] - b.astype(np.float64)[None, :, :]) ** 2).sum(-1)


def test_self_first_moves_or_inserts_each_rows_own_index():
    nbr = np.array([[0, 5, 7], [4, 1, 9], [6, 8, 3]])  # row 0 in place, row 1 second, row 2 absent
    np.testing.assert_array_equal(self_first(nbr), [[0, 5, 7], [1, 4, 9], [2, 6, 8]])


def test_sampled_row_max_is_exact_over_all_columns_and_a_lower_bound_over_fewer():
    x = clustered(300, 16, 10, 0)
    exact = brute_sqdist(x, x).max(axis=1)
    np.testing.assert_allclose(sampled_row_max(x, 300, np.random.default_rng(0)), exact, rtol=1e-5)
    sampled = sampled_row_max(x, 40, np.random.default_rng(0))
    assert (sampled <= exact * (1 + 1e-5)).all() and (sampled < exact * (1 - 1e-4)).any()


def test_an_exhaustive_probe_gives_the_exact_lists_and_candidates():
    x = clustered(400, 16, 25, 1)
    num_query, width, cands = 150, 9, 12
    found = ivf_neighbour_pass(get_ops("numpy"), x, num_query, width, cands, IVFSearch(probe=20, lists=20))
    d = brute_sqdist(x, x)
    np.testing.assert_array_equal(found.nbr, np.argsort(d, axis=1, kind="stable")[:, :width])
    gallery_order = np.argsort(d[:num_query, num_query:], axis=1, kind="stable")[:, :cands]
    np.testing.assert_array_equal(found.gallery_candidates, gallery_order)
    assert found.original is None


def test_lists_too_short_for_the_probe_are_searched_again_over_more_lists():
    x = clustered(400, 16, 25, 2)
    # 100 lists of about 4 items, one probed: a 30-long list needs several of them
    found = ivf_neighbour_pass(get_ops("numpy"), x, 100, 30, 30, IVFSearch(probe=1, lists=100, train_per_list=4))
    assert (found.nbr >= 0).all() and (found.gallery_candidates >= 0).all()
    np.testing.assert_array_equal(found.nbr[:, 0], np.arange(400))
    assert all(len(set(row)) == 30 for row in found.nbr.tolist())  # distinct neighbours, none padded


@pytest.mark.parametrize("xp", ["numpy", "torch"])
def test_sparse_reranking_on_exhaustive_ivf_lists_is_sparse_reranking(xp):
    x = clustered(600, 32, 40, 6)
    q, g = x[:200], x[200:]
    expected_idx, expected_dist = sparse_rerank(q, g, candidates=40, xp=xp, device="cpu")
    exhaustive = IVFSearch(probe=24, lists=24, row_max_sample=600)
    idx, dist = sparse_rerank(q, g, candidates=40, xp=xp, device="cpu", ivf=exhaustive)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(dist, expected_dist, atol=1e-5)


def test_the_exact_pass_and_an_exhaustive_ivf_agree_on_row_maxima():
    x = clustered(300, 16, 20, 3)
    ops = get_ops("numpy")
    exact = kreciprocal.neighbour_pass(ops, x, x.astype(np.float64), 100, 9, gallery_candidates=5)
    found = ivf_neighbour_pass(ops, x, 100, 9, 5, IVFSearch(probe=10, lists=10, row_max_sample=300))
    np.testing.assert_allclose(found.row_max, exact.row_max, rtol=1e-5)


def test_retrieve_takes_ivf_lists_from_the_config_and_refuses_them_in_exact_mode():
    x = clustered(300, 16, 20, 8)
    sparse = RerankConfig(mode="sparse", candidates=10)
    # 4 sqrt(300) = 69 lists, all probed, every column in the row-max sample: the exact lists
    ivf = dataclasses.replace(sparse, neighbour_search="ivf", ivf_probe=100)
    expected, got = retrieve(x[:100], x[100:], sparse), retrieve(x[:100], x[100:], ivf)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_allclose(got.values, expected.values, atol=1e-5)
    with pytest.raises(ConfigError, match="neighbour_search 'ivf' needs mode 'sparse'"):
        retrieve(x[:100], x[100:], RerankConfig(neighbour_search="ivf"))
