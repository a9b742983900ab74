"""Batch DropBlock (Dai et al. 2019, "Batch DropBlock Network for Person Re-identification
and Beyond"; the DIGIX 2020 third-place "batchdrop"): a second, training-only branch on the
backbone's feature map that zeroes the same random horizontal band for every image of the
batch, so the network must also find identity cues outside the most salient region.

As in the paper the branch has its own ResNet bottleneck (timm's) on the feature map, global
max pooling (a dropped band would pull an average down) and its own reduction, neck and
classifier, trained with the same losses as the global branch. Retrieval is unchanged: the
model's ``embed`` and eval-mode forward never call the branch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.core.compat import import_timm
from pipeline.core.errors import ConfigError
from pipeline.models.model import ModelOutput
from pipeline.models.pooling import create_pooling


def batch_drop(x: Tensor, height_ratio: float, width_ratio: float) -> Tensor:
    """``x`` (B, C, H, W) with one random block of round(ratio * side) rows and columns zeroed
    in every sample; drawn from torch's global generator (seeded and checkpointed by training)."""
    height, width = x.shape[-2:]
    h, w = max(1, round(height_ratio * height)), max(1, round(width_ratio * width))
    if h == height and w == width:
        raise ValueError(
            f"batch_drop: a {height_ratio} x {width_ratio} block of the {height} x {width} feature map is all of it; "
            "use a larger input, model.last_stride_1, or a smaller batch_drop_height"
        )
    top = int(torch.randint(0, height - h + 1, ()))
    left = int(torch.randint(0, width - w + 1, ()))
    mask = x.new_ones(height, width)
    mask[top : top + h, left : left + w] = 0
    return x * mask


class BatchDropBranch(nn.Module):
    """Feature map -> bottleneck -> batch drop -> max pooling -> reduction -> neck -> head."""

    def __init__(
        self,
        channels: int,
        reduction: nn.Module,
        neck: nn.Module,
        head: nn.Module | None,
        height_ratio: float = 0.3,
        width_ratio: float = 1.0,
    ) -> None:
        super().__init__()
        if channels % 4:
            raise ConfigError(f"batch_drop: the bottleneck needs a backbone width divisible by 4, got {channels}")
        # expansion 4: C -> C/4 -> C with a residual
        self.bottleneck = import_timm().models.resnet.Bottleneck(channels, channels // 4)  # expansion 4: C -> C/4 -> C, residual
        self.pooling = create_pooling("max")
        self.reduction, self.neck, self.head = reduction, neck, head
        self.height_ratio, self.width_ratio = height_ratio, width_ratio

    def forward(self, feature_map: Tensor, labels: Tensor | None = None) -> ModelOutput:
        x = batch_drop(self.bottleneck(feature_map), self.height_ratio, self.width_ratio)
        features = self.reduction(self.pooling(x))
        embeddings = self.neck(features)
        return ModelOutput(features, embeddings, None if self.head is None else self.head(embeddings, labels))
