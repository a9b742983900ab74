"""Does an exported graph compute what PyTorch computes? Compared on real (cached) images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.data.rescale_pad import ImageSize
from pipeline.data.torch_data import batch_tensor, normalize_batch
from pipeline.infer.tta import scale_batch


@torch.inference_mode()
def compare_embeddings(
    reference: torch.nn.Module,
    candidate: torch.nn.Module,
    images: np.ndarray,
    *,
    input_size: ImageSize,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    scales: Sequence[float] = (1.0,),
) -> dict[str, float]:
    """Largest differences of ``candidate.embed`` from ``reference.embed`` on uint8 ``images``.

    ``max_abs_normalised`` compares the L2-normalised embeddings (what retrieval uses, on the
    scale of cosine similarities); ``max_abs_raw`` and ``max_raw`` show the raw scale. Batches
    of ``batch_size`` also exercise the dynamic batch axis (the export traced a batch of 2), and
    each TTA scale in ``scales`` the dynamic height and width.
    """
    reference.eval()
    worst = {"max_abs_normalised": 0.0, "max_abs_raw": 0.0, "max_raw": 0.0}
    for start in range(0, len(images), batch_size):
        normalised = normalize_batch(batch_tensor(images[start : start + batch_size]), mean, std)
        for scale in scales:
            batch = scale_batch(normalised, input_size, scale)
            ours, theirs = reference.embed(batch).float(), candidate.embed(batch).float()
            worst["max_abs_raw"] = max(worst["max_abs_raw"], float((ours - theirs).abs().max()))
            worst["max_raw"] = max(worst["max_raw"], float(ours.abs().max()))
            gap = (F.normalize(ours, dim=1) - F.normalize(theirs, dim=1)).abs().max()
            worst["max_abs_normalised"] = max(worst["max_abs_normalised"], float(gap))
    return worst
