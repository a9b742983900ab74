"""Batch-hard triplet loss (Hermans et al. 2017) on pytorch-metric-learning parts.

Strong-baseline semantics: for every anchor the farthest positive and the nearest negative
in the batch, hinge max(0, d_ap - d_an + m) averaged over ALL anchors (MeanReducer; PML's
default reducer would average only the non-zero ones), Euclidean distance on the raw
features unless ``normalize``. A margin <= 0 selects the soft margin log(1 + exp(d_ap - d_an)).
"""

from __future__ import annotations

from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.miners import BatchHardMiner
from pytorch_metric_learning.reducers import MeanReducer
from torch import Tensor, nn
from torch.nn import functional as F


def batch_hard_parts(margin: float, normalize: bool) -> tuple[TripletMarginLoss, BatchHardMiner]:
    """The PML loss and miner both batch-hard losses (in-batch and cross-batch) are built from."""
    distance = LpDistance(normalize_embeddings=normalize, p=2, power=1)
    loss = TripletMarginLoss(
        margin=max(margin, 0.0), smooth_loss=margin <= 0, distance=distance, reducer=MeanReducer()
    )
    return loss, BatchHardMiner(distance=distance)


def triplet_hinge(d_ap: Tensor, d_an: Tensor, margin: float) -> Tensor:
    """Per-anchor triplet term, the same rule as ``batch_hard_parts``: hinge, or soft if margin <= 0."""
    if margin <= 0:
        return F.softplus(d_ap - d_an)
    return F.relu(d_ap - d_an + margin)


class BatchHardTripletLoss(nn.Module):
    def __init__(self, margin: float = 0.3, normalize: bool = False) -> None:
        super().__init__()
        self.loss, self.miner = batch_hard_parts(margin, normalize)

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """Anchors without a positive or a negative in the batch are left out by the miner."""
        return self.loss(features, labels, self.miner(features, labels))
