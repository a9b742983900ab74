"""Warm-up + multistep / cosine schedule and the two-rate optimiser, against hand computation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError
from pipeline.train.optim import build_optimizer
from pipeline.train.schedule import OptimConfig, build_scheduler, lr_factor


def test_linear_warmup_then_multistep():
    c = OptimConfig(warmup_epochs=10, warmup_factor=0.01, schedule="multistep", milestones=[40, 70], gamma=0.1)
    assert lr_factor(0, c, 120) == pytest.approx(0.01)
    assert lr_factor(5, c, 120) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(10, c, 120) == pytest.approx(1.0)
    assert lr_factor(39.9, c, 120) == pytest.approx(1.0)
    assert lr_factor(40, c, 120) == pytest.approx(0.1)
    assert lr_factor(70, c, 120) == pytest.approx(0.01)


def test_cosine_after_warmup_reaches_the_floor():
    c = OptimConfig(lr=1e-3, warmup_epochs=2, warmup_factor=0.1, schedule="cosine", min_lr=1e-5)
    floor = 1e-5 / 1e-3
    assert lr_factor(1, c, 12) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(2, c, 12) == pytest.approx(1.0)
    assert lr_factor(7, c, 12) == pytest.approx(floor + (1 - floor) * 0.5)  # half way
    assert lr_factor(4.5, c, 12) == pytest.approx(floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(12, c, 12) == pytest.approx(floor)


def test_scheduler_steps_per_iteration_with_separate_head_rate():
    model = nn.ModuleDict({"backbone": nn.Linear(2, 2), "head": nn.Linear(2, 2)})
    groups = {"backbone": list(model["backbone"].parameters()), "head": list(model["head"].parameters())}
    c = OptimConfig(optimizer="sgd", lr=0.1, head_lr_multiplier=10, warmup_epochs=1, warmup_factor=0.5,
                    schedule="multistep", milestones=[2])
    optimizer = build_optimizer(groups, c)
    scheduler = build_scheduler(optimizer, c, total_epochs=3, steps_per_epoch=4)
    seen = []
    for _ in range(12):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    expected_factor = [0.5, 0.625, 0.75, 0.875, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1]
    for (backbone, head), factor in zip(seen, expected_factor):
        assert backbone == pytest.approx(0.1 * factor)
        assert head == pytest.approx(1.0 * factor)


@pytest.mark.parametrize(("name", "cls"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
def test_optimizer_kind_and_explicit_head_lr(name, cls):
    groups = {"backbone": [nn.Parameter(torch.zeros(1))], "head": [nn.Parameter(torch.zeros(1))]}
    optimizer = build_optimizer(groups, OptimConfig(optimizer=name, lr=0.01, head_lr=0.5, momentum=0.8))
    assert isinstance(optimizer, cls)
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.5]
    if name == "sgd":
        assert optimizer.param_groups[0]["momentum"] == 0.8


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="optim.schedul"):
        from_mapping(OptimConfig, {"schedul": "cosine"}, "r.yaml", "optim")
    with pytest.raises(ConfigError, match="milestones must be increasing"):
        from_mapping(OptimConfig, {"milestones": [5, 2]}, "r.yaml", "optim")
    with pytest.raises(ConfigError, match="optimizer"):
        from_mapping(OptimConfig, {"optimizer": "lamb"}, "r.yaml", "optim")
