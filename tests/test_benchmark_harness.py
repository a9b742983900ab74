"""benchmarks/harness.py: the recipe variants every benchmark builds, against hand-written answers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from harness import variant_recipe  # noqa: E402


def test_changes_set_nested_keys_and_keep_commas_inside_brackets():
    base = {"train": {"p": 16, "k": 4}, "loss": {"triplet_weight": 1.0}}
    changed = variant_recipe(base, "train.input_size=[128, 64], train.p=32, loss.triplet_weight=0, model.extra={a: 1, b: [2, 3]}")
    assert changed == {
        "train": {"p": 32, "k": 4, "input_size": [128, 64]},
        "loss": {"triplet_weight": 0},
        "model": {"extra": {"a": 1, "b": [2, 3]}},
    }
    assert base == {"train": {"p": 16, "k": 4}, "loss": {"triplet_weight": 1.0}}  # the base is not touched
    assert variant_recipe(base, "") == base


@pytest.mark.parametrize("change, message", [("train.p", "expected key.path=value"), ("train.size=[1, 2", "not YAML")])
def test_a_malformed_change_is_one_line_naming_it(change, message):
    with pytest.raises(SystemExit, match=message):
        variant_recipe({}, change)
