"""``LossConfig`` and ``ReIDCriterion``: label-smoothed cross-entropy on the logits plus the
metric losses on the pre-BN features, weighted and summed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from pipeline.losses.aligned_triplet import AlignedLocalTripletLoss
from pipeline.losses.center import CenterLoss
from pipeline.losses.centroid_triplet import CentroidTripletLoss
from pipeline.losses.triplet import BatchHardTripletLoss
from pipeline.losses.xbm import XBMLoss
from pipeline.models.model import ModelOutput


@dataclass(frozen=True)
class LossConfig:
    ce_weight: float = 1.0
    label_smoothing: float = 0.1
    triplet_weight: float = 1.0
    triplet_margin: float = 0.3  # <= 0: soft margin
    triplet_normalize: bool = False  # L2-normalise features for triplet, centroid triplet and XBM
    center_weight: float = 0.0  # strong baseline: 0.0005
    center_lr: float = 0.5  # lr of the centers' own SGD optimiser
    centroid_triplet_weight: float = 0.0
    centroid_triplet_margin: float = 0.3  # <= 0: soft margin
    xbm_weight: float = 0.0
    xbm_size: int = 1024  # memory size in samples
    xbm_start_iteration: int = 0
    # AlignedReID local triplet (needs model.local_stripes > 0): hard pairs mined on the global
    # features, margin triplet_margin (pipeline/losses/aligned_triplet.py)
    local_triplet_weight: float = 0.0

    def validate(self) -> None:
        weights = {
            "ce_weight": self.ce_weight,
            "triplet_weight": self.triplet_weight,
            "center_weight": self.center_weight,
            "centroid_triplet_weight": self.centroid_triplet_weight,
            "xbm_weight": self.xbm_weight,
            "local_triplet_weight": self.local_triplet_weight,
        }
        for name, value in weights.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not any(weights.values()):
            raise ValueError("every loss weight is 0: nothing to train")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.center_lr <= 0:
            raise ValueError(f"center_lr must be > 0, got {self.center_lr}")
        if self.xbm_size < 1:
            raise ValueError(f"xbm_size must be >= 1, got {self.xbm_size}")
        if self.xbm_start_iteration < 0:
            raise ValueError(f"xbm_start_iteration must be >= 0, got {self.xbm_start_iteration}")


def pair_mask(labels: Tensor, metric_mask: Tensor | None = None) -> Tensor:
    """The samples inside ``metric_mask`` whose identity has 2+ samples inside it."""
    mask = torch.ones_like(labels, dtype=torch.bool) if metric_mask is None else metric_mask.to(torch.bool)
    same = (labels[:, None] == labels[None, :]) & mask[None, :]
    return mask & (same.sum(dim=1) >= 2)


class ReIDCriterion(nn.Module):
    """Weighted sum of the losses whose weight is > 0.

    Pairwise metric losses (triplet, centroid triplet, XBM) see only the samples inside
    ``metric_mask`` whose identity has 2+ samples there; with fewer than 2 such identities
    they are a graph-connected zero (and XBM enqueues nothing). The center loss needs no
    pairs: it uses every sample inside ``metric_mask``. The returned parts are the
    unweighted values, one key per active loss.

    The center parameters are NOT for the model's optimiser: give ``center_parameters()`` to
    ``torch.optim.SGD(..., lr=config.center_lr)`` and call ``step_centers_hook()`` between
    ``backward()`` and that optimiser's step.
    """

    def __init__(self, config: LossConfig, num_classes: int, feature_dim: int) -> None:
        super().__init__()
        config.validate()
        self.config = config
        c = config
        self.triplet = BatchHardTripletLoss(c.triplet_margin, c.triplet_normalize) if c.triplet_weight else None
        self.center = CenterLoss(num_classes, feature_dim) if c.center_weight else None
        self.centroid = (
            CentroidTripletLoss(c.centroid_triplet_margin, c.triplet_normalize) if c.centroid_triplet_weight else None
        )
        self.xbm = (
            XBMLoss(feature_dim, c.xbm_size, c.xbm_start_iteration, c.triplet_margin, c.triplet_normalize)
            if c.xbm_weight
            else None
        )
        self.local = AlignedLocalTripletLoss(c.triplet_margin, c.triplet_normalize) if c.local_triplet_weight else None

    def forward(
        self, output: ModelOutput, labels: Tensor, iteration: int, metric_mask: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        c = self.config
        labels = labels.long()
        # losses in float32 at least, whatever the autocast dtype of the model's outputs
        features = output.features.to(torch.promote_types(output.features.dtype, torch.float32))
        terms: dict[str, tuple[float, Tensor]] = {}
        if c.ce_weight:
            if output.logits is None:
                raise ValueError("ce_weight > 0 needs a model with a classifier head (num_classes > 0)")
            logits = output.logits.to(torch.promote_types(output.logits.dtype, torch.float32))
            terms["ce"] = (c.ce_weight, F.cross_entropy(logits, labels, label_smoothing=c.label_smoothing))
        zero = features.sum() * 0.0  # graph-connected, so backward() works on any batch
        if self.center is not None:
            inside = torch.ones_like(labels, dtype=torch.bool) if metric_mask is None else metric_mask.to(torch.bool)
            center = self.center(features[inside], labels[inside]) if inside.any() else zero
            terms["center"] = (c.center_weight, center)
        keep = pair_mask(labels, metric_mask)
        enough = torch.unique(labels[keep]).numel() >= 2
        pair_features, pair_labels = features[keep], labels[keep]
        if self.triplet is not None:
            terms["triplet"] = (c.triplet_weight, self.triplet(pair_features, pair_labels) if enough else zero)
        if self.centroid is not None:
            centroid = self.centroid(pair_features, pair_labels) if enough else zero
            terms["centroid"] = (c.centroid_triplet_weight, centroid)
        if self.xbm is not None:
            terms["xbm"] = (c.xbm_weight, self.xbm(pair_features, pair_labels, iteration) if enough else zero)
        if self.local is not None:
            if output.local_features is None:
                raise ValueError("loss.local_triplet_weight > 0 needs a model with a local branch (model.local_stripes > 0)")
            local = output.local_features.to(features.dtype)[keep]
            terms["local"] = (c.local_triplet_weight, self.local(pair_features, local, pair_labels) if enough else zero)
        total = sum(weight * value for weight, value in terms.values())
        values = torch.stack([value.detach().float() for _, value in terms.values()]).tolist()  # one sync
        return total, dict(zip(terms, values))

    def center_parameters(self) -> list[nn.Parameter]:
        return [] if self.center is None else [self.center.centers]

    def step_centers_hook(self) -> None:
        """Divide the centers' gradients by the center weight (strong baseline), so their SGD
        moves them at ``center_lr`` whatever the weight. Linear, so it commutes with AMP's
        gradient unscaling."""
        for parameter in self.center_parameters():
            if parameter.grad is not None:
                parameter.grad.mul_(1.0 / self.config.center_weight)
