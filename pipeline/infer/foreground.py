"""Background suppression by class activation (DIGIX 2020 retrieval, 3rd place; weakly supervised).

The trained backbone responds most where the object is: the channel-summed final feature
map (the aggregation map of SCDA, Wei et al. 2017) is thresholded per image and the
features are pooled from the high-response positions only, so a cluttered or tinted
background adds less to the embedding. Written here because no library offers it: it is a
threshold and a masked pooling over the model's own layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:  # the model package imports timm; this module needs only its methods
    from pipeline.models.model import ReIDModel


def activation_mask(feature_map: Tensor, threshold: float) -> Tensor:
    """(B, H, W) bool: where the channel sum of ``feature_map`` (B, C, H, W) reaches ``threshold``.

    The threshold is relative to each image's own range: 0 keeps every position, 1 only the
    maximum; the maximum always passes, so no mask is empty.
    """
    activation = feature_map.float().sum(dim=1)
    low = activation.amin(dim=(-2, -1), keepdim=True)
    high = activation.amax(dim=(-2, -1), keepdim=True)
    return activation >= low + threshold * (high - low)


def embed_foreground(model: "ReIDModel", images: Tensor, threshold: float) -> Tensor:
    """``model.embed`` with the pooling restricted to the activation mask of each image."""
    feature_map = model.feature_map(images)
    return model.embed_pooled(model.pooling(feature_map, activation_mask(feature_map, threshold)))
