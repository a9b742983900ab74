"""Query expansion and database-side augmentation against hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import ConfigError, DataError
from pipeline.retrieval.expansion import alpha_query_expansion, average_query_expansion, database_augmentation


def unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


# Gallery on the unit circle (2-D) at known angles; the query at angle 0.
GALLERY = np.array([unit([np.cos(a), np.sin(a)]) for a in (0.1, -0.3, 1.2, 3.0)], np.float32)
QUERY = np.array([[2.0, 0.0]], np.float32)  # not normalised on purpose


def test_average_qe_by_hand():
    got = average_query_expansion(QUERY, GALLERY, 2)
    expected = unit(unit([1, 0]) + GALLERY[0] + GALLERY[1])
    np.testing.assert_allclose(got[0], expected, atol=1e-6)
    assert got.dtype == np.float32


def test_alpha_qe_by_hand():
    got = alpha_query_expansion(QUERY, GALLERY, 3, alpha=2.0)
    # Neighbours 0.1, -0.3, 1.2 rad: weights cos^2; the query itself weighs 1.
    weights = np.cos([0.1, -0.3, 1.2]) ** 2
    expected = unit(unit([1, 0]) + weights @ GALLERY[[0, 1, 2]].astype(np.float64))
    np.testing.assert_allclose(got[0], expected, atol=1e-6)


def test_alpha_qe_ignores_negative_similarity():
    got = alpha_query_expansion(QUERY, GALLERY, 4, alpha=1.0)
    weights = np.maximum(np.cos([0.1, -0.3, 1.2, 3.0]), 0.0)  # cos(3.0) < 0 contributes nothing
    expected = unit(unit([1, 0]) + weights @ GALLERY.astype(np.float64))
    np.testing.assert_allclose(got[0], expected, atol=1e-6)


def test_dba_by_hand():
    got = database_augmentation(GALLERY, 1)
    # Nearest other item: 0.1 <-> -0.3 (0.4 rad), 1.2 -> 0.1 (1.1 rad), 3.0 -> 1.2 (1.8 rad).
    expected = [unit(GALLERY[0] + GALLERY[1]), unit(GALLERY[1] + GALLERY[0]),
                unit(GALLERY[2] + GALLERY[0]), unit(GALLERY[3] + GALLERY[2])]
    np.testing.assert_allclose(got, np.array(expected), atol=1e-6)
    weighted = database_augmentation(GALLERY, 1, alpha=3.0)
    np.testing.assert_allclose(weighted[2], unit(GALLERY[2] + np.cos(1.1) ** 3 * GALLERY[0]), atol=1e-6)


def test_dba_excludes_self_even_with_duplicates():
    g = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    got = database_augmentation(g, 1)
    np.testing.assert_allclose(got[:2], [[1, 0], [1, 0]], atol=1e-6)  # each duplicate expands with the other
    np.testing.assert_allclose(got[2], unit([1, 1]), atol=1e-6)


def test_bad_inputs():
    with pytest.raises(DataError, match="larger than"):
        average_query_expansion(QUERY, GALLERY, 5)
    with pytest.raises(DataError, match="larger than"):
        database_augmentation(GALLERY, 4)
    with pytest.raises(ConfigError, match="alpha"):
        alpha_query_expansion(QUERY, GALLERY, 2, alpha=-1.0)
    with pytest.raises(DataError, match="query: row 0"):
        average_query_expansion(np.array([[np.nan, 1.0]], np.float32), GALLERY, 2)
