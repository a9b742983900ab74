"""Torch-side data: datasets over the uint8 image cache and batch normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.data.transforms import SeededAugment


def normalize_batch(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """uint8 (B, H, W, 3) RGB -> float32 (B, 3, H, W), ``(x / 255 - mean) / std``.

    Done on the batch (on the training device) rather than per image in the loader: the
    loader then moves 4x fewer bytes and the arithmetic runs once, vectorised.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 (B, H, W, 3), got {images.dtype} {tuple(images.shape)}")
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    return x.sub_(mean_t).div_(std_t).contiguous()


def batch_tensor(rows: np.ndarray) -> torch.Tensor:
    """A tensor of ``rows`` that owns a writable copy.

    Rows of the read-only cache memmap would otherwise be shared with torch, which warns on
    every call that writing through the tensor is undefined behaviour.
    """
    return torch.from_numpy(np.array(rows, copy=True, order="C"))


class AugmentedImages(Dataset):
    """Items ``(position, seed)`` from the PK sampler -> (augmented uint8 HxWx3, class id).

    ``position`` indexes ``rows`` (the training split's rows of the image cache).
    """

    def __init__(
        self, images: np.ndarray, rows: np.ndarray, class_ids: np.ndarray, augment: SeededAugment
    ) -> None:
        self.images = images  # (N, S, S, 3) uint8, usually a read-only memmap
        self.rows = rows
        self.class_ids = class_ids  # aligned with rows
        self.augment = augment

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        position, seed = item
        image = self.augment(np.asarray(self.images[self.rows[position]]), seed)
        return torch.from_numpy(np.array(image)), int(self.class_ids[position])  # a writable copy

