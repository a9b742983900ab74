"""Rescale-pad: fit an image into a H x W box (a square by default) without distorting it.

The image is scaled by the largest factor that fits the box (for a square: its long side
becomes ``size``); the other side is scaled by the same factor (rounded half up, at least
1 pixel) and padded with ``fill``, centred. When the padding is odd, the extra pixel goes
to the bottom / right (``top = pad // 2``), the convention of ``cv2.copyMakeBorder`` users
and of most re-id code bases. A box of the data's own shape (a person is about 2:1, so
256 x 128) keeps the pixels a square would spend on padding.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.core.sections import ImageSize, height_width



def rescale_pad_box(h: int, w: int, size: ImageSize) -> tuple[int, int, int, int]:
    """Return ``(new_h, new_w, top, left)``: the resized content and its offset in the box."""
    box_h, box_w = height_width(size)
    if h < 1 or w < 1 or box_h < 1 or box_w < 1:
        raise ValueError(f"rescale_pad_box needs positive sides, got h={h} w={w} size={size}")
    # The factor is min(box_h / h, box_w / w); the other side is rounded half up with
    # integers only (exact, no float ties).
    if box_h * w <= box_w * h:
        new_h, new_w = box_h, max(1, (2 * w * box_h + h) // (2 * h))
    else:
        new_h, new_w = max(1, (2 * h * box_w + w) // (2 * w)), box_w
    return new_h, new_w, (box_h - new_h) // 2, (box_w - new_w) // 2


def rescale_pad(
    image: np.ndarray,
    size: ImageSize,
    fill: tuple[int, int, int] = (0, 0, 0),
    interpolation: int = cv2.INTER_AREA,
) -> np.ndarray:
    """Return ``image`` (RGB uint8 HxWx3) resized and padded to a (box_h, box_w, 3) uint8 array."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"rescale_pad expects an RGB uint8 (H, W, 3) array, got dtype {image.dtype} shape {image.shape}"
        )
    h, w = image.shape[:2]
    box_h, box_w = height_width(size)
    new_h, new_w, top, left = rescale_pad_box(h, w, size)
    resized = image if (new_h, new_w) == (h, w) else cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    return cv2.copyMakeBorder(
        resized,
        top,
        box_h - new_h - top,
        left,
        box_w - new_w - left,
        cv2.BORDER_CONSTANT,
        value=tuple(int(v) for v in fill),
    )
