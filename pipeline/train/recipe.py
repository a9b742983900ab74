"""A model recipe (``configs/<name>.yaml``): model, loss, augmentation, optimiser, training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.core.config import from_mapping, merged, read_yaml
from pipeline.core.sections import height_width
from pipeline.data.transforms import AugmentConfig
from pipeline.core.errors import ConfigError
from pipeline.losses import LossConfig
from pipeline.models import ModelConfig
from pipeline.core.params import StageParams
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
    # NHWC activations: oneDNN's faster convolution kernels on the CPU, same fp32 arithmetic
    # (lite0 1.51x, densenet121 1.25x, resnest14d 0.99x per training step; bench_train.md)
    channels_last: bool = True
    eval_every: int = 1  # validate every n epochs (and always after the last)
    eval_batch_size: int = 128
    # two-stage long-tail training (DIGIX 2020 third place): stage 2 is a recipe that starts from
    # the best.pt of recipe ``init_from`` on the same fold and undersamples big identities
    init_from: str | None = None  # a recipe name under train.recipes; its run must exist
    max_per_identity: int | None = None  # images of one identity per epoch at most (>= k); None: all

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
        if self.max_per_identity is not None and self.max_per_identity < self.k:
            raise ValueError(f"max_per_identity must be at least k={self.k}, got {self.max_per_identity}")
        if self.init_from is not None and not self.init_from.strip():
            raise ValueError("init_from must name a recipe or be null")


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


BASE_KEY = "_base_"
BASE_FOLDER = "_base_"  # the train stage's DVC deps list configs/_base_: bases elsewhere would go untracked


def read_recipe(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe's mapping with its ``_base_`` chain merged under it, as fast-reid's ``_BASE_``.

    ``_base_: ../_base_/strong_baseline.yaml`` (a path relative to the recipe) names the recipe
    this one extends; the recipe states only what differs (sections merge key by key). A base
    may have a base. Bases live in a folder named ``_base_``.
    """
    path = Path(path)
    data = read_yaml(path)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: {BASE_KEY} must be the path of a base recipe, relative to this file")
    base_path = path.parent / base
    if base_path.resolve().parent.name != BASE_FOLDER:
        raise ConfigError(f"{path}: {BASE_KEY}: {base} is not in a '{BASE_FOLDER}' folder "
                          "(the train stage's DVC dependencies track configs/_base_)")
    chain = (*_chain, path.resolve())
    if base_path.resolve() in chain:
        raise ConfigError(f"{path}: {BASE_KEY}: {base} is already in this recipe's chain ({' -> '.join(map(str, chain))})")
    return merged(read_recipe(base_path, chain), data)


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe; an unknown or mistyped key is a ConfigError naming file and key."""
    return from_mapping(Recipe, read_recipe(path), str(path))


def stage_one_checkpoint(params: StageParams, model: str, recipe: Recipe, fold: int) -> Path | None:
    """The first-stage weights (best.pt of the same fold) a ``train.init_from`` recipe starts
    from; None without one."""
    source = recipe.train.init_from
    if source is None:
        return None
    if source == model:
        raise ConfigError(f"{params.recipe(model)}: train.init_from names the recipe itself")
    path = params.checkpoint(source, fold)
    if not path.is_file():
        raise ConfigError(f"{params.recipe(model)}: train.init_from: {path} not found; train '{source}' on fold {fold} first")
    return path
