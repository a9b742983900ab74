"""The re-id meta-architecture: backbone -> pooling -> (reduction) -> neck -> head."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from pipeline.models.freeze import set_frozen_batchnorm_eval


@dataclass
class ModelOutput:
    features: Tensor  # pre-neck (B, D): the metric losses' input
    embeddings: Tensor  # post-neck (B, D): the classifier's input
    logits: Tensor | None  # (B, C), margins applied when labels are given; None without a head
    local_features: Tensor | None = None  # (B, stripes, D) AlignedReID local branch; None without one
    # training-only branches (Batch DropBlock), each trained with the same losses
    branches: tuple[ModelOutput, ...] = field(default_factory=tuple)


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
        local: nn.Module | None = None,
        batch_drop: nn.Module | None = None,
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
        self.local = local  # AlignedReID local branch on the last feature map (local_branch.py)
        self.batch_drop = batch_drop  # feature map -> ModelOutput, in training only (batch_drop.py)
        # timm sets output_fmt on channels-last families (e.g. swin); NCHW otherwise
        self._channels_last = getattr(backbone, "output_fmt", "NCHW") == "NHWC"

    def feature_map(self, images: Tensor) -> Tensor:
        """The backbone's last feature map as (B, C, H, W) (token sequences as (B, C, N, 1))."""
        x = self.backbone.forward_features(images)
        if x.ndim == 3:  # token sequences (B, N, C), e.g. ViT: pooled over the tokens
            if self.local is not None:
                raise ValueError("model.local_stripes needs a backbone with a 2-D feature map, not tokens")
            return x.transpose(1, 2).unsqueeze(-1)
        return x.permute(0, 3, 1, 2) if self._channels_last else x

    def forward(self, images: Tensor, labels: Tensor | None = None) -> ModelOutput:
        x = self.feature_map(images)
        features = self.reduction(self.pooling(x))
        embeddings = self.neck(features)
        logits = None if self.head is None else self.head(self.dropout(embeddings), labels)
        local = None if self.local is None else self.local(x)
        branches = (self.batch_drop(x, labels),) if self.batch_drop is not None and self.training else ()
        return ModelOutput(features=features, embeddings=embeddings, logits=logits, local_features=local, branches=branches)

    def embed(self, images: Tensor) -> Tensor:
        """The retrieval embedding (not normalised); needs no labels and skips the head."""
        return self.embed_parts(images, local=False)[0]

    def embed_parts(self, images: Tensor, local: bool) -> tuple[Tensor, Tensor | None]:
        """The retrieval embedding and, if ``local``, the local features (B, stripes, D)."""
        x = self.feature_map(images)
        embedding = self.embed_pooled(self.pooling(x))
        if not local:
            return embedding, None
        if self.local is None:
            raise ValueError("local features asked of a model without a local branch (model.local_stripes is 0)")
        return embedding, self.local(x)

    def embed_pooled(self, pooled: Tensor) -> Tensor:
        """The retrieval embedding of already pooled features (B, C), e.g. pooled under a mask."""
        features = self.reduction(pooled)
        return features if self.embedding == "pre_bn" else self.neck(features)
    def retrieval_embedding(self, output: ModelOutput) -> Tensor:
        """The part of a ``forward`` output that ``embed`` returns (for terms on both, e.g. distillation)."""
        return output.features if self.embedding == "pre_bn" else output.embeddings

    def train(self, mode: bool = True) -> ReIDModel:
        super().train(mode)
        set_frozen_batchnorm_eval(self.backbone)  # frozen stages keep their running stats
        return self

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """{"backbone": ..., "head": pooling + reduction + neck + classifier (+ local branch,
        batch-drop branch)} for two learning rates.

        Frozen backbone parameters are included, so ``unfreeze`` needs no new optimiser (an
        optimiser skips parameters without gradients); the BNNeck bias, frozen for good, is not.
        """
        head = [
            p
            for part in (self.pooling, self.reduction, self.neck, self.head, self.local, self.batch_drop)
            if part is not None
            for p in part.parameters()
            if p.requires_grad
        ]
        return {"backbone": list(self.backbone.parameters()), "head": head}
