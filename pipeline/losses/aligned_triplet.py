"""AlignedReID's local batch-hard triplet loss: hard pairs mined on the global features."""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.losses.triplet import batch_hard_parts, triplet_hinge
from pipeline.retrieval.aligned import aligned_distance


class AlignedLocalTripletLoss(nn.Module):
    """Batch-hard triplet loss on the aligned local distance, with the hard positive and
    negative of each anchor mined on the GLOBAL features (as the paper does): the local
    distance is computed for those 2 pairs per anchor only."""

    def __init__(self, margin: float = 0.3, normalize: bool = False) -> None:
        super().__init__()
        self.margin = margin
        _, self.miner = batch_hard_parts(margin, normalize)  # the global triplet's own mining

    def forward(self, global_features: Tensor, local_features: Tensor, labels: Tensor) -> Tensor:
        anchors, positives, negatives = self.miner(global_features.detach(), labels)
        if anchors.numel() == 0:
            return local_features.sum() * 0.0  # graph-connected zero
        d_ap = aligned_distance(local_features[anchors], local_features[positives])
        d_an = aligned_distance(local_features[anchors], local_features[negatives])
        return triplet_hinge(d_ap, d_an, self.margin).mean()
