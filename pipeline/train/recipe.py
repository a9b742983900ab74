"""A model recipe (``configs/<name>.yaml``): model, loss, augmentation, optimiser, training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.config import from_mapping, read_yaml
from pipeline.sections import height_width
from pipeline.data.transforms import AugmentConfig
from pipeline.losses import LossConfig
from pipeline.models import ModelConfig
from pipeline.train.schedule import OptimConfig


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    p: int = 16  # identities per batch (per rank)
    k: int = 4  # images per identity
    input_size: int | tuple[int, int] = 64  # square side, or [height, width], fed to the network
    amp: Literal["none", "bf16", "fp16"] = "none"  # fp16 falls back to bf16 on CPU
    seed: int = 0
    unfreeze_epoch: int | None = None  # unfreeze the frozen stages from this epoch on (0-based)
    workers: int = 0  # DataLoader worker processes; 0 augments in the training process
    eval_every: int = 1  # validate every n epochs (and always after the last)
    eval_batch_size: int = 128

    def validate(self) -> None:
        for name in ("epochs", "p", "k", "eval_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if min(height_width(self.input_size)) < 1:
            raise ValueError(f"input_size must be positive, got {self.input_size}")
        if self.p < 2:
            raise ValueError("p must be at least 2: metric losses need negatives in the batch")
        if self.workers < 0:
            raise ValueError("workers must not be negative")
        if self.unfreeze_epoch is not None and self.unfreeze_epoch < 0:
            raise ValueError("unfreeze_epoch must not be negative")


@dataclass(frozen=True)
class Recipe:
    model: ModelConfig
    train: TrainConfig
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self) -> None:
        height, width = height_width(self.train.input_size)
        if self.augment.rotate90_p > 0 and height != width:
            # a quarter turn makes a W x H image that cannot share a batch with H x W ones
            raise ValueError(f"augment.rotate90_p must be 0 with a non-square train.input_size {height}x{width}")
        if bool(self.loss.local_triplet_weight) != bool(self.model.local_stripes):
            # one without the other: a loss with no branch, or a branch nothing trains
            raise ValueError("loss.local_triplet_weight > 0 and model.local_stripes > 0 go together (the local branch)")


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe; an unknown or mistyped key is a ConfigError naming file and key."""
    return from_mapping(Recipe, read_yaml(path), str(path))
