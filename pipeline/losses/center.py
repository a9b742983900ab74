"""Center loss (Wen et al. 2016) as in the re-id strong baseline; not in pytorch-metric-learning.

loss = mean_i ||x_i - c_{y_i}||^2. The centers are trained by their own SGD optimiser
(lr ``center_lr``) after their gradients are divided by the loss weight, so the weight
scales the pull on the features but not the speed of the centers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CenterLoss(nn.Module):
    def __init__(self, num_classes: int, feature_dim: int) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feature_dim))

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        centers = self.centers[labels].to(features.dtype)
        return (features - centers).pow(2).sum(dim=1).mean()
