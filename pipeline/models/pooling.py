"""Global pooling of a backbone feature map (B, C, H, W) into one vector per image (B, C).

Every pooling takes an optional ``mask`` (B, H, W) of positions to pool (background
suppression at extraction): the pooled statistic is then taken over those positions only.
"""

from __future__ import annotations

from collections.abc import Callable

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


class AttentionPool(nn.Module):
    """Attention pooling, FastReID's fourth aggregation: f_c = sum_n w_n x_c,n with
    w = softmax over the positions n of a learnt score (a bias-free 1x1 convolution of the map).

    FastReID's paper defines it as a softmax-weighted mean (its eq. 4) but fast-reid's code
    ships no such layer, so how the weights are made is chosen here: one map shared by the
    channels (C weights; a per-channel map would add C^2, too many for a few hundred training
    identities). The score starts at zero, i.e. uniform weights, exactly average pooling: a
    pretrained backbone starts from the aggregation its features were trained under and the
    map is learnt from there. A bias would change nothing (softmax ignores a shift). Under a
    ``mask`` the softmax runs over the masked positions only.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(channels, 1, kernel_size=1, bias=False)
        nn.init.zeros_(self.score.weight)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        # float32 whatever the autocast dtype, as GeM: a bf16 softmax over a few hundred
        # positions rounds the small weights away
        logits = self.score(x).flatten(1).float()  # (B, H*W)
        if mask is not None:
            logits = logits.masked_fill(~mask.bool().flatten(1), float("-inf"))
        weights = torch.softmax(logits, dim=1)
        # a product and a sum, not bmm, which autocast would run in bf16
        return (x.flatten(2).float() * weights.unsqueeze(1)).sum(dim=-1)


class MaxPool(nn.Module):
    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            return F.adaptive_max_pool2d(x, 1).flatten(1)
        return x.masked_fill(~mask.bool().unsqueeze(1), float("-inf")).amax(dim=(-2, -1))


# One table of pooling names: each builds from (gem_p, gem_learnable, the feature map's channels).
POOLINGS: dict[str, Callable[[float, bool, int], nn.Module]] = {
    "gem": lambda gem_p, gem_learnable, channels: GeM(p=gem_p, learnable=gem_learnable),
    "avg": lambda gem_p, gem_learnable, channels: AvgPool(),
    "max": lambda gem_p, gem_learnable, channels: MaxPool(),
    "attention": lambda gem_p, gem_learnable, channels: AttentionPool(channels),
}


def create_pooling(name: str, gem_p: float = 3.0, gem_learnable: bool = True, channels: int = 0) -> nn.Module:
    """The pooling ``name`` of POOLINGS; "attention" needs the feature map's ``channels``."""
    if name not in POOLINGS:
        raise ValueError(f"unknown pooling {name!r} (known: {', '.join(POOLINGS)})")
    if name == "attention" and channels < 1:
        raise ValueError(f"attention pooling needs the feature map's channels, got {channels}")
    return POOLINGS[name](gem_p, gem_learnable, channels)
