"""Learning-rate schedule: linear warm-up, then multistep decay or cosine annealing.

A small pure function of the (fractional) epoch driven by torch's ``LambdaLR`` once per
iteration, rather than timm's schedulers: timm's warm-up starts every parameter group
at the same absolute rate, which would undo the separate backbone and head rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch


@dataclass(frozen=True)
class OptimConfig:
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 3.5e-4  # backbone rate
    head_lr_multiplier: float = 1.0  # head rate = lr * this, unless head_lr is given
    head_lr: float | None = None
    weight_decay: float = 5e-4
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    warmup_epochs: float = 0.0
    warmup_factor: float = 0.01  # the warm-up starts at lr * this
    schedule: Literal["multistep", "cosine"] = "multistep"
    milestones: list[float] = field(default_factory=list)  # epochs, multistep only
    gamma: float = 0.1
    min_lr: float = 0.0  # cosine floor, as an absolute backbone rate
    grad_clip: float | None = None  # max gradient norm

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.head_lr is not None and self.head_lr <= 0:
            raise ValueError(f"head_lr must be positive, got {self.head_lr}")
        if not 0 < self.warmup_factor <= 1:
            raise ValueError(f"warmup_factor must be in (0, 1], got {self.warmup_factor}")
        if self.warmup_epochs < 0:
            raise ValueError("warmup_epochs must not be negative")
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing, got {self.milestones}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must be in [0, lr], got {self.min_lr}")

    @property
    def head_rate(self) -> float:
        return self.head_lr if self.head_lr is not None else self.lr * self.head_lr_multiplier


def lr_factor(epoch: float, config: OptimConfig, total_epochs: int) -> float:
    """Multiplier of the base rates at fractional ``epoch`` (0 = start of training)."""
    warmup = config.warmup_epochs
    if epoch < warmup:
        return config.warmup_factor + (1.0 - config.warmup_factor) * epoch / warmup
    if config.schedule == "multistep":
        return config.gamma ** sum(epoch >= m for m in config.milestones)
    floor = config.min_lr / config.lr
    span = max(total_epochs - warmup, 1e-12)
    progress = min((epoch - warmup) / span, 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimConfig, total_epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per iteration; its state (the step count) goes in the checkpoint."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step / steps_per_epoch, config, total_epochs)
    )
