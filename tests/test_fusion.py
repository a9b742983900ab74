"""Candidate-list fusion, rank voting and weight tuning on hand cases."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import ConfigError, DataError
from pipeline.retrieval.candidates import CandidateLists
from pipeline.retrieval.fusion import fuse_candidate_lists, rank_voting, simplex_grid, tune_weights


def full_lists(distances: np.ndarray) -> CandidateLists:
    """Every gallery item of each row, best first (ties: lower index)."""
    order = np.argsort(distances, axis=1, kind="stable")
    return CandidateLists(order, np.take_along_axis(distances, order, 1))


def test_fuse_full_lists_by_hand():
    a = np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]], np.float32)
    b = np.array([[0.4, 0.2, 0.0], [0.0, 1.0, 0.5]], np.float32)
    # Row min-max: a -> [0, 1, .5], [0, 0, 0] (constant row); b -> [1, .5, 0], [0, 1, .5].
    # Weights 3:1 -> row 0: [.25, .875, .375], row 1: [0, .25, .125].
    got = fuse_candidate_lists([full_lists(a), full_lists(b)], [3, 1])
    np.testing.assert_array_equal(got.indices, [[0, 2, 1], [0, 2, 1]])
    np.testing.assert_allclose(got.values, [[0.25, 0.375, 0.875], [0, 0.125, 0.25]], atol=1e-7)


def test_rank_voting_by_hand():
    r1 = np.array([[4, 2, 7]])  # scores 1, 1/2, 1/3
    r2 = np.array([[2, 7, 4]])
    # w = .5/.5: item 2: .5*(1/2) + .5*1 = .75; item 4: .5 + .5/3 = .667; item 7: .5/3 + .25 = .417
    np.testing.assert_array_equal(rank_voting([r1, r2], [1, 1], 10), [[2, 4, 7]])
    # w = .8/.2: item 4: .8 + .2/3 = .867; item 2: .4 + .2 = .6; item 7: .8/3 + .1 = .367
    np.testing.assert_array_equal(rank_voting([r1, r2], [4, 1], 10), [[4, 2, 7]])
    # Tie (equal weights, mirrored lists) goes to the lower index; longer list sets k.
    np.testing.assert_array_equal(rank_voting([np.array([[5, 3]]), np.array([[3, 5, 1]])], [1, 1], 6), [[3, 5, 1]])


def test_fuse_candidate_lists_by_hand():
    m1 = CandidateLists(np.array([[0, 1]]), np.array([[0.1, 0.5]]))
    m2 = CandidateLists(np.array([[1, 2]]), np.array([[0.2, 0.6]]))
    # Union {0, 1, 2}. m1: [0.1, 0.5, fill 0.5] -> [0, 1, 1]; m2: [fill 0.6, 0.2, 0.6] -> [1, 0, 1].
    fused = fuse_candidate_lists([m1, m2], [1, 1])
    np.testing.assert_array_equal(fused.indices, [[0, 1]])  # 0.5, 0.5, 1.0: tie -> lower index first
    np.testing.assert_allclose(fused.values, [[0.5, 0.5]])
    fused = fuse_candidate_lists([m1, m2], [1, 3])
    np.testing.assert_array_equal(fused.indices, [[1, 0]])
    np.testing.assert_allclose(fused.values, [[0.25, 0.75]])


def test_simplex_grid():
    grid = simplex_grid(3, 0.5)
    assert grid == [(0, 0, 1), (0, 0.5, 0.5), (0, 1, 0), (0.5, 0, 0.5), (0.5, 0.5, 0), (1, 0, 0)]
    assert len(simplex_grid(3, 0.1)) == 66


def top1(ranked: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray) -> float:
    return float(np.mean(gallery_labels[ranked[:, 0]] == query_labels))


def test_tune_weights_finds_the_known_best():
    # Model a is right on queries 0-2, model b on query 3; each outvotes the other only in a
    # band of weights, built so the one grid point with all four right is (0.3, 0.7).
    gallery_labels = np.array(["p", "q", "r", "s"])
    query_labels = np.array(["p", "q", "r", "s"])
    a = np.eye(4, dtype=np.float32) * -1 + 1  # right item at 0, others at 1
    a[3] = [0, 1, 1, 1]  # model a is wrong on query 3
    b = np.ones((4, 4), np.float32)
    b[[0, 1, 2], [1, 2, 3]] = 0.0  # b prefers a wrong item for queries 0-2 ...
    b[[0, 1, 2], [0, 1, 2]] = 0.4  # ... by 0.4 of its range
    b[3] = [0.6, 1, 1, 0]  # b is right on query 3, with a 0.6 margin
    # Query 0-2 right iff 0.4 * wb < wa * 1, i.e. wa > 0.286; query 3 right iff wb * .6 > wa.
    # Both: 0.286 < wa < 0.375 -> on the grid wa = 0.3.
    weights, score = tune_weights(
        2, lambda w: top1(fuse_candidate_lists([full_lists(a), full_lists(b)], w).ranking(1), query_labels, gallery_labels), 0.1
    )
    np.testing.assert_allclose(weights, [0.3, 0.7])
    assert score == 1.0


def test_bad_inputs():
    a = full_lists(np.zeros((2, 3), np.float32))
    with pytest.raises(DataError, match="shape"):
        fuse_candidate_lists([a, full_lists(np.zeros((3, 3)))], [1, 1])
    with pytest.raises(DataError, match="model 1.*row 1"):
        fuse_candidate_lists([a, CandidateLists(a.indices, np.array([[0, 0, 0], [0, np.nan, 0]]))], [1, 1])
    with pytest.raises(ConfigError, match="2 models but 3 weights"):
        fuse_candidate_lists([a, a], [1, 1, 1])
    with pytest.raises(ConfigError, match="weights"):
        fuse_candidate_lists([a, a], [0, 0])
    with pytest.raises(DataError, match="outside"):
        rank_voting([np.array([[0, 5]])], [1], 5)
    with pytest.raises(DataError, match="twice"):
        rank_voting([np.array([[1, 1]])], [1], 5)
    with pytest.raises(DataError, match="no candidate lists"):
        fuse_candidate_lists([], [])
    with pytest.raises(ConfigError, match="grid_step"):
        tune_weights(2, lambda w: 0.0, grid_step=0.3)
