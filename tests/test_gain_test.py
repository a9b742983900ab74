"""pipeline.chain.gain_test: the paired test behind every departure from a default, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.chain.gain_test import choose_option, paired_gain
from pipeline.core.errors import DataError


def test_paired_gain_is_the_mean_difference_and_its_standard_error():
    # differences 0.75, 0, 0, 0.75: mean 0.375, sd sqrt(4 * 0.375^2 / 3) = 0.4330, SE 0.4330 / 2
    test = paired_gain(np.array([1.0, 1.0, 0.25, 1.0]), np.array([0.25, 1.0, 0.25, 0.25]), k=1.0)
    assert test.mean_gain == pytest.approx(0.375) and test.se == pytest.approx(0.375 / np.sqrt(3)) and test.queries == 4
    assert test.passed  # 0.375 > 0.2165
    assert not paired_gain(np.array([1.0, 1.0, 0.25, 1.0]), np.array([0.25, 1.0, 0.25, 0.25]), k=2.0).passed  # 0.433
    assert test.record() == {"mean_gain": 0.375, "se": pytest.approx(0.2165, abs=1e-4), "queries": 4, "k": 1.0, "passed": True}


def test_no_gain_and_an_unknown_error_keep_the_default():
    same = paired_gain(np.array([0.5, 1.0]), np.array([0.5, 1.0]), k=0.0)
    assert (same.mean_gain, same.se, same.passed) == (0.0, 0.0, False)  # k 0 still asks for a gain above zero
    # one query better, none worse: exactly one standard error, which is not beyond it
    assert not paired_gain(np.array([1.0, 0.5, 0.5]), np.array([0.25, 0.5, 0.5]), k=1.0).passed
    # every query gains alike: no spread, so any k passes
    assert paired_gain(np.array([1.0, 1.0]), np.array([0.5, 0.5]), k=10.0).passed
    one = paired_gain(np.array([1.0]), np.array([0.0]), k=0.0)  # one query: no standard error to judge by
    assert one.se == float("inf") and not one.passed and one.record()["se"] is None
    with pytest.raises(DataError, match=r"shapes \(2,\) and \(3,\)"):
        paired_gain(np.zeros(2), np.zeros(3), k=1.0)


def test_the_best_option_that_passes_is_chosen_not_the_best_scoring_one():
    per_query = {
        "raw": np.full(6, 0.5),
        # gains 0.5 x 4, -0.5 x 2: +0.1667 +- 0.2108 (sd 0.5164): the highest mean, within its error
        "noisy": np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0]),
        # gains 0.25 x 2, 0 x 4: +0.0833 +- 0.0527 (sd 0.1291): passes
        "steady": np.array([0.75, 0.75, 0.5, 0.5, 0.5, 0.5]),
        # gains 0.1 x 2, 0 x 4: +0.0333 +- 0.0211: passes, but scores below 'steady'
        "small": np.array([0.6, 0.5, 0.5, 0.5, 0.5, 0.6]),
    }
    choice = choose_option(per_query, "raw", k=1.0)
    assert choice.chosen == "steady" and choice.default == "raw"
    assert {o: t.passed for o, t in choice.tests.items()} == {"noisy": False, "steady": True, "small": True}
    assert choice.tests["noisy"].mean_gain == pytest.approx(1 / 6)
    assert choice.tests["noisy"].se == pytest.approx(np.sqrt((4 * (1 / 3) ** 2 + 2 * (2 / 3) ** 2) / 5) / np.sqrt(6))
    assert choice.tests["steady"].se == pytest.approx(np.sqrt((2 * (1 / 6) ** 2 + 4 * (1 / 12) ** 2) / 5) / np.sqrt(6))
    assert choice.record()["tests"]["steady"]["passed"] is True


def test_within_its_error_the_default_is_kept_beyond_it_the_alternative_taken():
    raw = np.array([1.0, 1.0, 0.25, 0.25])
    within = {"raw": raw, "reranked": np.array([1.0, 1.0, 1.0, 0.25])}  # +0.1875 +- 0.1875
    assert choose_option(within, "raw", k=1.0).chosen == "raw"
    assert choose_option(within, "raw", k=0.0).chosen == "reranked"  # any gain: the pooled score alone
    beyond = {"raw": raw, "reranked": np.array([1.0, 1.0, 1.0, 1.0])}  # +0.375 +- 0.2165
    assert choose_option(beyond, "raw", k=1.0).chosen == "reranked"
    # ties among those that pass go to the earlier option
    tied = {"raw": raw, "a": np.ones(4), "b": np.ones(4)}
    assert choose_option(tied, "raw", k=1.0).chosen == "a"
    with pytest.raises(DataError, match="default option 'plain' is not among"):
        choose_option(within, "plain", k=1.0)
