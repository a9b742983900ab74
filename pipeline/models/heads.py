"""Classifier heads: embeddings (B, D) -> logits (B, C), with the margin on the target class.

The margin heads are written here rather than taken from pytorch-metric-learning: its
ArcFaceLoss / CosFaceLoss own their weight matrix and return a loss, not logits, so they
cannot sit behind the BNNeck, share the label-smoothed cross-entropy of the linear head,
or be given the head learning rate through ``ReIDModel.parameter_groups``.
Without labels the cosine heads return the scaled cosine s*cos (no margin), whose argmax
and ranking are those of the cosine similarity.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class LinearHead(nn.Module):
    """Plain linear classifier without bias (strong baseline: normal init, std 0.001)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.normal_(self.weight, std=0.001)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return F.linear(x, self.weight)


class _CosineHead(nn.Module):
    """Cosine between the normalised embedding and normalised class weights (fast-reid init)."""

    def __init__(self, in_features: int, num_classes: int, scale: float, margin: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.normal_(self.weight, std=0.01)
        self.scale = scale
        self.margin = margin

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        # at least float32 even under autocast: with s=30 a bf16 cosine is off by ~0.1 logit
        dtype = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(device_type=x.device.type, enabled=False):
            cos = F.linear(F.normalize(x.to(dtype)), F.normalize(self.weight.to(dtype)))
            cos = cos.clamp(-1.0, 1.0)
            if labels is None:
                return self.scale * cos
            target = F.one_hot(labels.long(), num_classes=cos.shape[1]).to(torch.bool)
            return self.margin_logits(cos, target)

    def margin_logits(self, cos: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        c, d = self.weight.shape
        return f"in_features={d}, num_classes={c}, scale={self.scale}, margin={self.margin}"


class ArcFaceHead(_CosineHead):
    """ArcFace: s*cos(theta + m) on the target class, s*cos(theta) elsewhere.

    Where theta + m would pass pi, cos(theta + m) turns back up; there (as in insightface)
    the target logit is s*(cos(theta) - m*sin(m)) so it keeps falling as theta grows.
    """

    def margin_logits(self, cos: Tensor, target: Tensor) -> Tensor:
        m = self.margin
        sin = (1.0 - cos * cos).clamp(min=1e-12).sqrt()
        cos_theta_m = cos * math.cos(m) - sin * math.sin(m)
        cos_theta_m = torch.where(cos > math.cos(math.pi - m), cos_theta_m, cos - m * math.sin(m))
        return self.scale * torch.where(target, cos_theta_m, cos)


class CosFaceHead(_CosineHead):
    """CosFace / AM-Softmax: s*(cos(theta) - m) on the target class, s*cos(theta) elsewhere."""

    def margin_logits(self, cos: Tensor, target: Tensor) -> Tensor:
        return self.scale * torch.where(target, cos - self.margin, cos)


class CircleHead(_CosineHead):
    """Classification form of Circle loss (Sun et al. 2020), as fast-reid's CircleSoftmax.

    Target: s*alpha_p*(cos - delta_p), alpha_p = relu(1 + m - cos), delta_p = 1 - m;
    others: s*alpha_n*(cos - delta_n), alpha_n = relu(cos + m), delta_n = m.
    The alphas are weights, not paths for the gradient (detached, as in the paper).
    """

    def margin_logits(self, cos: Tensor, target: Tensor) -> Tensor:
        m = self.margin
        alpha_p = (1.0 + m - cos.detach()).clamp(min=0.0)
        alpha_n = (cos.detach() + m).clamp(min=0.0)
        positive = self.scale * alpha_p * (cos - (1.0 - m))
        negative = self.scale * alpha_n * (cos - m)
        return torch.where(target, positive, negative)


# One table of head names (as timm's layer factories keep one per kind): ModelConfig checks
# ``model.head`` against it and create_head builds from it.
HEADS: dict[str, Callable[[int, int, float, float], nn.Module]] = {
    "linear": lambda in_features, num_classes, scale, margin: LinearHead(in_features, num_classes),
    "arcface": ArcFaceHead,
    "cosface": CosFaceHead,
    "circle": CircleHead,
}


def create_head(name: str, in_features: int, num_classes: int, scale: float = 30.0, margin: float = 0.35) -> nn.Module:
    """The classifier head ``name`` of HEADS; ``scale`` and ``margin`` for the cosine heads."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r} (known: {', '.join(HEADS)})")
    return HEADS[name](in_features, num_classes, scale, margin)
