"""Necks between the pooled feature and the classifier, and the strong-baseline initialisers."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn


def init_kaiming(module: nn.Module) -> None:
    """Strong-baseline init: Kaiming (fan_out) for linear/conv layers, BN weight 1 and bias 0."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.kaiming_normal_(module.weight, a=0, mode="fan_out")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class BNNeck(nn.Module):
    """BatchNorm1d whose bias is frozen at zero (Luo et al., "Bag of Tricks", strong baseline).

    Without a shift the normalised features stay centred on the hypersphere the classifier
    separates, while the pre-BN features serve the metric losses.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        init_kaiming(self.bn)
        self.bn.bias.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(x)


NECKS: dict[str, Callable[[int], nn.Module]] = {"bnneck": BNNeck, "none": lambda dim: nn.Identity()}


def create_neck(name: str, dim: int) -> nn.Module:
    """The neck ``name`` of NECKS for ``dim``-wide embeddings."""
    if name not in NECKS:
        raise ValueError(f"unknown neck {name!r} (known: {', '.join(NECKS)})")
    return NECKS[name](dim)
