"""Checkpoints: atomic round trip under weights_only=True; RNG capture; pickles refused."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.core.errors import DataError
from pipeline.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_round_trip_of_training_state_with_weights_only(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3,
        "history": [{"step": 0.0, "val/score": 0.25}], "best": {}, "meta": {"mean": [0.5, 0.5, 0.5], "fold": None},
        "rng": rng_state(),
    }
    path = tmp_path / "ck" / "last.pt"
    save_checkpoint(path, state)
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left behind
    loaded = load_checkpoint(path)  # weights_only=True inside
    for name, tensor in state["model"].items():
        assert torch.equal(loaded["model"][name], tensor)
    restored = torch.optim.Adam(model.parameters(), lr=0.1)
    restored.load_state_dict(loaded["optimizer"])
    assert torch.equal(restored.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert loaded["history"] == state["history"] and loaded["epoch"] == 3


def test_rng_state_restores_every_generator(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.rand(5), np.random.rand(5), random.random()  # move every generator on
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]


class Opaque:  # any non-tensor object: only a full unpickler could rebuild it
    pass


def test_pickled_objects_and_missing_files_are_data_errors(tmp_path):
    torch.save({"obj": Opaque()}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match="evil.pt: not a loadable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
