"""Validation on a fold's held-out identities: top-1, mAP@10 and their mean (the score).

Embeddings come from the extraction path itself (``pipeline.infer.tta.extract_features``
with a single plain view), so the epoch that validation picks as best is judged on the same
pixels (same resize, same normalisation) as the submission's features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from pipeline.evaluate.metrics import competition_scores
from pipeline.infer.tta import extract_features
from pipeline.core.sections import TTAConfig


def rank_by_cosine(query: torch.Tensor, gallery: torch.Tensor, k: int) -> np.ndarray:
    """(Nq, k) gallery indices, most similar first (inputs L2-normalised)."""
    return torch.topk(query @ gallery.T, k=k, dim=1).indices.cpu().numpy()


def validation_scores(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    query_rows: np.ndarray,
    gallery_rows: np.ndarray,
    *,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 128,
) -> dict[str, float]:
    """{"top1", "map@10", "score"} of ranking ``gallery_rows`` for every row of ``query_rows``.

    One plain view per image through ``extract_features``; the model's train mode is restored.
    """
    view = TTAConfig(flip=False, batch_size=batch_size)
    was_training = model.training
    try:
        query, gallery = (
            torch.from_numpy(extract_features(model, np.asarray(images[rows]), input_size=size, mean=mean, std=std,
                                              cfg=view, description="validate"))
            for rows in (query_rows, gallery_rows)
        )
    finally:
        model.train(was_training)
    k = min(10, len(gallery_rows))  # a tiny gallery is scored at its own size
    ranked = rank_by_cosine(query, gallery, k=k)
    scores = competition_scores(ranked, labels[query_rows], labels[gallery_rows], k=k)
    return {"top1": scores["top1"], "map@10": scores[f"map@{k}"], "score": scores["score"]}
