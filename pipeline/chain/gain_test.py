"""When an out-of-fold gain is real enough to act on: a paired test over the tuning queries.

A tuning set of a few dozen held-out identities scores every option with an error of a few
hundredths, and the best of several options beats the default by about that much on noise
alone. So the tuned fuse stage keeps its default (a model's raw lists; the best single model;
the lists fusion) unless an alternative's per-query score difference, paired over the same
queries, has a mean above ``k`` standard errors (``fuse.min_gain_se``). ``k = 0`` takes any
gain above zero, the choice by pooled score alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pipeline.core.errors import DataError

# Scores are fractions of [0, 1]; this absorbs the rounding of a mean that equals k standard errors
# exactly (one query better and none worse is always exactly one SE: mean a / n, sd a / sqrt(n)).
TOLERANCE = 1e-9


@dataclass(frozen=True)
class GainTest:
    """An alternative against the default over the same ``queries`` tuning queries."""

    mean_gain: float  # mean of the per-query differences, alternative minus default
    se: float  # their standard error, std (ddof 1) / sqrt(n); inf for fewer than two queries
    queries: int
    k: float

    @property
    def passed(self) -> bool:
        """The gain is beyond ``k`` standard errors (never with an unknown error)."""
        return bool(np.isfinite(self.se)) and self.mean_gain > self.k * self.se + TOLERANCE

    def record(self) -> dict[str, float | int | bool | None]:
        """For fuse.json (an unknown standard error is written as null)."""
        return {
            "mean_gain": self.mean_gain,
            "se": self.se if np.isfinite(self.se) else None,
            "queries": self.queries,
            "k": self.k,
            "passed": self.passed,
        }


def paired_gain(alternative: np.ndarray, default: np.ndarray, k: float) -> GainTest:
    """The test of per-query scores ``alternative`` against ``default`` (same queries, same order)."""
    if alternative.shape != default.shape or alternative.ndim != 1:
        raise DataError(f"paired test: per-query scores of shapes {alternative.shape} and {default.shape}")
    diff = alternative.astype(np.float64) - default.astype(np.float64)
    n = diff.size
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n >= 2 else float("inf")
    return GainTest(float(diff.mean()) if n else 0.0, se, n, k)


@dataclass(frozen=True)
class OptionChoice:
    """One model's option: the default unless some alternative passed its test against it."""

    default: str
    chosen: str
    tests: dict[str, GainTest]  # every other option against the default

    def record(self) -> dict[str, object]:
        return {"default": self.default, "tests": {option: test.record() for option, test in self.tests.items()}}


def choose_option(per_query: Mapping[str, np.ndarray], default: str, k: float) -> OptionChoice:
    """Of the options whose gain over ``default`` passes, the one of highest mean score (the
    earlier one on ties, in ``per_query``'s order); ``default`` where none passes."""
    if default not in per_query:
        raise DataError(f"paired test: the default option '{default}' is not among {list(per_query)}")
    tests = {option: paired_gain(scores, per_query[default], k) for option, scores in per_query.items() if option != default}
    passed = [option for option, test in tests.items() if test.passed]
    chosen = max(passed, key=lambda option: per_query[option].mean()) if passed else default
    return OptionChoice(default, chosen, tests)
