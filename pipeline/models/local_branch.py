"""AlignedReID's local branch: horizontal stripes of the last feature map -> local features."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from pipeline.core.errors import ConfigError
from pipeline.models.neck import init_kaiming


class LocalBranch(nn.Module):
    """(B, C, H, W) feature map -> (B, stripes, dim) local features, top stripe first.

    Each stripe is max-pooled over its rows and the whole width (the paper's horizontal max
    pooling; with fewer stripes than rows, adjacent rows share a stripe), then reduced by a
    1x1 conv + BN + ReLU.
    """

    def __init__(self, in_channels: int, stripes: int, dim: int) -> None:
        super().__init__()
        if stripes < 1 or dim < 1:
            raise ValueError(f"local_stripes and local_dim must be >= 1, got {stripes} and {dim}")
        self.stripes = stripes
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU())
        self.reduce.apply(init_kaiming)

    def forward(self, feature_map: Tensor) -> Tensor:
        height = feature_map.shape[2]
        if height < self.stripes:
            raise ConfigError(
                f"model.local_stripes is {self.stripes} but the backbone's last feature map is only "
                f"{height} rows high at this input size: use at most {height} stripes or a larger input"
            )
        stripes = F.adaptive_max_pool2d(feature_map, (self.stripes, 1))
        return self.reduce(stripes).squeeze(-1).transpose(1, 2)
