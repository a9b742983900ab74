"""Rescale-pad: fit an image into a square without distorting it.

The long side is scaled to ``size``; the short side is scaled by the same factor (rounded
half up, at least 1 pixel) and padded with ``fill`` to a centred square. When the padding
is odd, the extra pixel goes to the bottom / right (``top = pad // 2``), the convention of
``cv2.copyMakeBorder`` users and of most re-id code bases.
"""

from __future__ import annotations

import cv2
import numpy as np


def rescale_pad_box(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """Return ``(new_h, new_w, top, left)``: the resized content and its offset in the square."""
    if h < 1 or w < 1 or size < 1:
        raise ValueError(f"rescale_pad_box needs positive sides, got h={h} w={w} size={size}")
    long_side = max(h, w)
    # Integer round-half-up of side * size / long_side: exact, no float ties.
    new_h = max(1, (2 * h * size + long_side) // (2 * long_side))
    new_w = max(1, (2 * w * size + long_side) // (2 * long_side))
    return new_h, new_w, (size - new_h) // 2, (size - new_w) // 2


def rescale_pad(
    image: np.ndarray,
    size: int,
    fill: tuple[int, int, int] = (0, 0, 0),
    interpolation: int = cv2.INTER_AREA,
) -> np.ndarray:
    """Return ``image`` (RGB uint8 HxWx3) resized and padded to a (size, size, 3) uint8 square."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"rescale_pad expects an RGB uint8 (H, W, 3) array, got dtype {image.dtype} shape {image.shape}"
        )
    h, w = image.shape[:2]
    new_h, new_w, top, left = rescale_pad_box(h, w, size)
    resized = image if (new_h, new_w) == (h, w) else cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    return cv2.copyMakeBorder(
        resized,
        top,
        size - new_h - top,
        left,
        size - new_w - left,
        cv2.BORDER_CONSTANT,
        value=tuple(int(v) for v in fill),
    )
