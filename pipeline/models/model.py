"""The re-id meta-architecture: backbone -> pooling -> (reduction) -> neck -> head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from pipeline.models.freeze import set_frozen_batchnorm_eval


@dataclass
class ModelOutput:
    features: Tensor  # pre-neck (B, D): the metric losses' input
    embeddings: Tensor  # post-neck (B, D): the classifier's input
    logits: Tensor | None  # (B, C), margins applied when labels are given; None without a head


class ReIDModel(nn.Module):
    """Parts are given ready-made (see ``create_model``); ``config`` is kept as a record.

    ``embedding`` names the retrieval feature ``embed`` returns: "post_bn" (after the neck)
    or "pre_bn" (before it).
    """

    def __init__(
        self,
        backbone: nn.Module,
        pooling: nn.Module,
        reduction: nn.Module,
        neck: nn.Module,
        head: nn.Module | None,
        *,
        feature_dim: int,
        num_classes: int,
        dropout: float = 0.0,
        embedding: str = "post_bn",
        config: Any = None,
    ) -> None:
        super().__init__()
        if embedding not in ("post_bn", "pre_bn"):
            raise ValueError(f"embedding must be 'post_bn' or 'pre_bn', got {embedding!r}")
        self.backbone = backbone
        self.pooling = pooling
        self.reduction = reduction
        self.neck = neck
        self.dropout = nn.Dropout(dropout)
        self.head = head
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.embedding = embedding
        self.config = config
        # timm sets output_fmt on channels-last families (e.g. swin); NCHW otherwise
        self._channels_last = getattr(backbone, "output_fmt", "NCHW") == "NHWC"

    def feature_map(self, images: Tensor) -> Tensor:
        """The backbone's final feature map as (B, C, H, W) (token sequences as (B, C, N, 1))."""
        x = self.backbone.forward_features(images)
        if x.ndim == 3:  # token sequences (B, N, C), e.g. ViT: pooled over the tokens
            x = x.transpose(1, 2).unsqueeze(-1)
        elif self._channels_last:
            x = x.permute(0, 3, 1, 2)
        return x

    def _pooled(self, images: Tensor) -> Tensor:
        return self.pooling(self.feature_map(images))

    def forward(self, images: Tensor, labels: Tensor | None = None) -> ModelOutput:
        features = self.reduction(self._pooled(images))
        embeddings = self.neck(features)
        logits = None if self.head is None else self.head(self.dropout(embeddings), labels)
        return ModelOutput(features=features, embeddings=embeddings, logits=logits)

    def embed(self, images: Tensor) -> Tensor:
        """The retrieval embedding (not normalised); needs no labels and skips the head."""
        return self.embed_pooled(self._pooled(images))

    def embed_pooled(self, pooled: Tensor) -> Tensor:
        """The retrieval embedding of already pooled features (B, C), e.g. pooled under a mask."""
        features = self.reduction(pooled)
        return features if self.embedding == "pre_bn" else self.neck(features)

    def train(self, mode: bool = True) -> ReIDModel:
        super().train(mode)
        set_frozen_batchnorm_eval(self.backbone)  # frozen stages keep their running stats
        return self

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """{"backbone": ..., "head": pooling + reduction + neck + classifier} for two learning rates.

        Frozen backbone parameters are included, so ``unfreeze`` needs no new optimiser (an
        optimiser skips parameters without gradients); the BNNeck bias, frozen for good, is not.
        """
        head = [
            p
            for part in (self.pooling, self.reduction, self.neck, self.head)
            if part is not None
            for p in part.parameters()
            if p.requires_grad
        ]
        return {"backbone": list(self.backbone.parameters()), "head": head}
