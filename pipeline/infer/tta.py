"""Test-time-augmented feature extraction: scales x rotations x flips, summed and L2-normalised.

The rotations and flips of a square batch keep its shape, so all views of one scale are
stacked into a single forward pass: fewer, larger calls keep the extraction close to a bare
forward over the same views (see benchmarks/bench_extract.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.data.torch_data import batch_tensor, normalize_batch
from pipeline.core.errors import ConfigError
from pipeline.infer.foreground import embed_foreground
from pipeline.core.sections import ImageSize, TTAConfig, height_width


def scale_batch(batch: torch.Tensor, input_size: ImageSize, scale: float) -> torch.Tensor:
    """Resize a (B, 3, H, W) batch to ``round(side * scale)`` for each side of ``input_size``."""
    shape = tuple(max(1, round(side * scale)) for side in height_width(input_size))
    if tuple(batch.shape[-2:]) == shape:
        return batch
    return F.interpolate(batch, size=shape, mode="bilinear", align_corners=False, antialias=True)


def stack_views(batch: torch.Tensor, rotations: Sequence[int], flip: bool) -> torch.Tensor:
    """All rotations (and their mirror images) of a batch, stacked view-major: (V*B, 3, H, W).

    Quarter turns of a non-square batch would change its shape: ``extract_features`` refuses them.
    """
    views = [torch.rot90(batch, k=(r // 90) % 4, dims=(2, 3)) for r in rotations]
    if flip:
        views += [torch.flip(v, dims=(3,)) for v in views]
    return torch.cat(views)


@torch.inference_mode()
def embed_with_tta(model: torch.nn.Module, batch: torch.Tensor, input_size: ImageSize, cfg: TTAConfig) -> torch.Tensor:
    """Sum of the embeddings of every view of ``batch`` (normalised (B, 3, H, W)), L2-normalised."""
    return embed_parts_with_tta(model, batch, input_size, cfg, local=False)[0]


@torch.inference_mode()
def embed_parts_with_tta(
    model: torch.nn.Module, batch: torch.Tensor, input_size: ImageSize, cfg: TTAConfig, local: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``embed_with_tta`` and, if ``local``, the local features (B, stripes, D) summed over the
    upright views (a turn would reorder the stripes), normalised per stripe."""
    total: torch.Tensor | None = None
    local_total: torch.Tensor | None = None
    size = batch.shape[0]
    upright = [v for v in range(len(cfg.rotations) * (2 if cfg.flip else 1)) if cfg.rotations[v % len(cfg.rotations)] % 360 == 0]
    for scale in cfg.scales:
        views = stack_views(scale_batch(batch, input_size, scale), cfg.rotations, cfg.flip)
        if cfg.suppress_background:  # the global embedding pooled from the activation mask; stripes as they are
            embedded = embed_foreground(model, views, cfg.suppress_threshold)
            local_features = model.embed_parts(views, local=True)[1] if local else None
        else:
            # ``embed`` alone is the contract of a plain embedding model; the local branch needs more
            embedded, local_features = model.embed_parts(views, local=True) if local else (model.embed(views), None)
        summed = embedded.float().view(-1, size, embedded.shape[-1]).sum(dim=0)
        total = summed if total is None else total + summed
        if local_features is not None:
            per_view = F.normalize(local_features.float(), dim=-1).view(-1, size, *local_features.shape[1:])
            upright_sum = per_view[upright].sum(dim=0)
            local_total = upright_sum if local_total is None else local_total + upright_sum
    assert total is not None
    return F.normalize(total, dim=1), None if local_total is None else F.normalize(local_total, dim=-1)


def extract_features(
    model: torch.nn.Module,
    images: np.ndarray,
    *,
    input_size: ImageSize | list[int],
    mean: Sequence[float],
    std: Sequence[float],
    cfg: TTAConfig,
    description: str = "extract",
) -> np.ndarray:
    """Features (N, D) float32, L2-normalised, for uint8 images (N, H, W, 3) such as the cache."""
    return extract_parts(
        model, images, input_size=input_size, mean=mean, std=std, cfg=cfg, description=description, local=False
    )[0]


def extract_parts(
    model: torch.nn.Module,
    images: np.ndarray,
    *,
    input_size: ImageSize | list[int],
    mean: Sequence[float],
    std: Sequence[float],
    cfg: TTAConfig,
    description: str = "extract",
    local: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``extract_features`` and, if ``local``, the local features (N, stripes, D) float32."""
    input_size = height_width(input_size)
    if input_size[0] != input_size[1] and any(r % 180 for r in cfg.rotations):
        raise ConfigError(
            f"extract.rotations {list(cfg.rotations)}: quarter turns need a square input, "
            f"the model takes {input_size[0]}x{input_size[1]} (use 0 and 180 only)"
        )
    if local and not any(r % 360 == 0 for r in cfg.rotations):
        raise ConfigError(f"extract.rotations {list(cfg.rotations)}: local features need the upright view (0)")
    # a module without parameters (onnxruntime's OnnxEmbedder) takes CPU tensors
    device = next(model.parameters(), torch.empty(0)).device
    model.eval()
    chunks, local_chunks = [], []
    for start in tqdm(range(0, len(images), cfg.batch_size), desc=description, unit="batch", leave=False):
        raw = batch_tensor(images[start : start + cfg.batch_size]).to(device)
        features, local_features = embed_parts_with_tta(model, normalize_batch(raw, mean, std), input_size, cfg, local)
        chunks.append(features.cpu())
        if local_features is not None:
            local_chunks.append(local_features.cpu())
    if not chunks:
        raise ValueError(f"{description}: no images to extract")
    local_array = torch.cat(local_chunks).numpy().astype(np.float32) if local_chunks else None
    return torch.cat(chunks).numpy().astype(np.float32), local_array


def average_fold_features(per_fold: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the fold models' normalised features, normalised again (the fold ensemble).

    Works on local features (N, stripes, D) too: each stripe is normalised on its own.
    """
    stacked = np.stack(per_fold).astype(np.float32)
    mean = stacked.mean(axis=0)
    norms = np.linalg.norm(mean, axis=-1, keepdims=True)
    return mean / np.maximum(norms, 1e-12)
