"""Validation on a fold's held-out identities: top-1, mAP@10 and their mean (the score)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.data.torch_data import iterate_images, normalize_batch
from pipeline.evaluate.metrics import competition_scores
from pipeline.train.amp import AmpMode, autocast


@torch.no_grad()
def embed_rows(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    *,
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device,
    amp: AmpMode = "none",
    batch_size: int = 128,
) -> torch.Tensor:
    """L2-normalised float32 embeddings of ``images[rows]`` (model switched to eval, then back)."""
    was_training = model.training
    model.eval()
    try:
        chunks = []
        for batch in iterate_images(images, rows, size, batch_size):
            x = normalize_batch(batch.to(device), mean, std)
            with autocast(amp, device):
                chunks.append(model.embed(x).float())
        return F.normalize(torch.cat(chunks), dim=1)
    finally:
        model.train(was_training)


def rank_by_cosine(query: torch.Tensor, gallery: torch.Tensor, k: int) -> np.ndarray:
    """(Nq, k) gallery indices, most similar first (inputs L2-normalised)."""
    return torch.topk(query @ gallery.T, k=k, dim=1).indices.cpu().numpy()


def validation_scores(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    query_rows: np.ndarray,
    gallery_rows: np.ndarray,
    **embed_kwargs,
) -> dict[str, float]:
    """{"top1", "map@10", "score"} of ranking ``gallery_rows`` for every row of ``query_rows``."""
    query = embed_rows(model, images, query_rows, **embed_kwargs)
    gallery = embed_rows(model, images, gallery_rows, **embed_kwargs)
    k = min(10, len(gallery_rows))  # a tiny gallery is scored at its own size
    ranked = rank_by_cosine(query, gallery, k=k)
    scores = competition_scores(ranked, labels[query_rows], labels[gallery_rows], k=k)
    return {"top1": scores["top1"], "map@10": scores[f"map@{k}"], "score": scores["score"]}
