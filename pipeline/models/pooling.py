"""Global pooling of a backbone feature map (B, C, H, W) into one vector per image (B, C).

Every pooling takes an optional ``mask`` (B, H, W) of positions to pool (background
suppression at extraction): the pooled statistic is then taken over those positions only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class GeM(nn.Module):
    """Generalised-mean pooling: (mean(clamp(x, eps)^p))^(1/p).

    p = 1 is average pooling and p -> inf tends to max pooling. Written here because timm
    has no GeM layer. The map is clamped at ``eps`` because GeM is only defined for
    non-negative inputs (post-ReLU maps); p is clamped at 1 so a learnt p cannot fall below
    average pooling, where the power blows up small activations.
    """

    def __init__(self, p: float = 3.0, learnable: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        value = torch.tensor(float(p))
        if learnable:
            self.p = nn.Parameter(value)
        else:
            self.register_buffer("p", value)
        self.eps = eps

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        # float32 whatever the autocast dtype: x^p in bf16 loses the small activations
        x = x.float().clamp(min=self.eps)
        p = self.p.float().clamp(min=1.0)
        return _masked_mean(x.pow(p), mask).pow(1.0 / p)

    def extra_repr(self) -> str:
        return f"p={float(self.p.detach()):.4f}, learnable={isinstance(self.p, nn.Parameter)}, eps={self.eps}"


def _masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of (B, C, H, W) over H, W, or over the positions where ``mask`` (B, H, W) is set."""
    if mask is None:
        return x.mean(dim=(-2, -1))
    weight = mask.to(x.dtype).unsqueeze(1)
    return (x * weight).sum(dim=(-2, -1)) / weight.sum(dim=(-2, -1)).clamp(min=1.0)


class AvgPool(nn.Module):
    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            return F.adaptive_avg_pool2d(x, 1).flatten(1)
        return _masked_mean(x, mask)


class MaxPool(nn.Module):
    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            return F.adaptive_max_pool2d(x, 1).flatten(1)
        return x.masked_fill(~mask.bool().unsqueeze(1), float("-inf")).amax(dim=(-2, -1))


def create_pooling(name: str, gem_p: float = 3.0, gem_learnable: bool = True) -> nn.Module:
    """Pick a pooling layer by name: "gem", "avg" or "max"."""
    if name == "gem":
        return GeM(p=gem_p, learnable=gem_learnable)
    if name == "avg":
        return AvgPool()
    if name == "max":
        return MaxPool()
    raise ValueError(f"unknown pooling {name!r} (known: gem, avg, max)")
