"""Deep mutual learning's terms (Zhang et al. 2018, as AlignedReID trains its model pairs).

Each term is the sum of both directions, each direction pulling one model toward the OTHER
model's detached output, so every model is trained toward its partner and not vice versa
through the same term.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def mutual_kl(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """KL(p_b || p_a) + KL(p_a || p_b), the target side detached; mean over the batch."""
    log_a, log_b = F.log_softmax(logits_a.float(), dim=1), F.log_softmax(logits_b.float(), dim=1)
    a_to_b = F.kl_div(log_a, log_b.detach(), log_target=True, reduction="batchmean")
    b_to_a = F.kl_div(log_b, log_a.detach(), log_target=True, reduction="batchmean")
    return a_to_b + b_to_a


def batch_distances(features: Tensor) -> Tensor:
    """(B, B) Euclidean distances of the L2-normalised features: comparable across models of
    different widths and feature scales."""
    x = F.normalize(features.float(), dim=1)
    return (2 - 2 * x @ x.T).clamp_min(1e-12).sqrt()


def mutual_metric(features_a: Tensor, features_b: Tensor) -> Tensor:
    """AlignedReID's metric mutual loss: mean squared difference of the two batch distance
    matrices, each model's matrix pulled toward the other's detached one."""
    d_a, d_b = batch_distances(features_a), batch_distances(features_b)
    return ((d_a - d_b.detach()) ** 2).mean() + ((d_b - d_a.detach()) ** 2).mean()
