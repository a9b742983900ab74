"""Centroid triplet loss (Wieczorek et al. 2021, "On the Unreasonable Effectiveness of
Centroids in Image Retrieval"); not in pytorch-metric-learning, hence written here.

For each anchor: the positive is the centroid of the OTHER samples of its class in the
batch (leave-one-out), the negatives are the centroids of the other classes; triplet hinge
on the nearest negative centroid, averaged over anchors. Euclidean distances.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from pipeline.losses.triplet import triplet_hinge


def _euclidean(a: Tensor, b: Tensor) -> Tensor:
    # clamped before the root: a zero distance would give an infinite gradient
    return (a - b).pow(2).sum(dim=-1).clamp(min=1e-12).sqrt()


def centroid_distances(features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(d_pos (N,), d_neg (N, K)): distance of each anchor to its leave-one-out centroid and
    to every class centroid, +inf in its own class's column. Needs 2+ samples per class."""
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    if counts.min() < 2 or len(classes) < 2:
        raise ValueError("centroid triplet loss needs 2+ classes with 2+ samples each")
    sums = features.new_zeros(len(classes), features.shape[1]).index_add(0, inverse, features)
    centroids = sums / counts[:, None].to(features.dtype)
    leave_one_out = (sums[inverse] - features) / (counts[inverse, None] - 1).to(features.dtype)
    d_pos = _euclidean(features, leave_one_out)
    d_all = _euclidean(features[:, None, :], centroids[None, :, :])
    own = F.one_hot(inverse, len(classes)).to(torch.bool)
    return d_pos, d_all.masked_fill(own, float("inf"))


class CentroidTripletLoss(nn.Module):
    def __init__(self, margin: float = 0.3, normalize: bool = False) -> None:
        super().__init__()
        self.margin = margin
        self.normalize = normalize

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        if self.normalize:
            features = F.normalize(features, dim=1)
        d_pos, d_neg = centroid_distances(features, labels)
        return triplet_hinge(d_pos, d_neg.min(dim=1).values, self.margin).mean()
