"""The two corruptions the demo puts on query/gallery images, as the denoiser will meet them.

Gaussian: i.i.d. per-channel N(0, sigma) in 0-255 units, clipped and rounded back to uint8.
Salt-and-pepper: a fraction ``amount`` of the pixels (all three channels together, as a dead
or saturated sensor pixel) set to 0 or 255 with equal odds.
"""

from __future__ import annotations

import numpy as np

NOISE_KINDS = ("none", "gaussian", "salt_pepper", "both")


def add_gaussian_noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = rgb.astype(np.float32) + rng.normal(0.0, sigma, size=rgb.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def add_salt_pepper_noise(rgb: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    height, width = rgb.shape[:2]
    out = rgb.copy()
    hit = rng.random((height, width)) < amount
    salt = rng.random((height, width)) < 0.5
    out[hit & salt] = 255
    out[hit & ~salt] = 0
    return out


def apply_noise(
    rgb: np.ndarray, kind: str, sigma: float, amount: float, rng: np.random.Generator
) -> np.ndarray:
    """Corrupt ``rgb`` as ``kind`` says; "both" adds Gaussian first, then salt-and-pepper."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r} (known: {', '.join(NOISE_KINDS)})")
    out = rgb
    if kind in ("gaussian", "both"):
        out = add_gaussian_noise(out, sigma, rng)
    if kind in ("salt_pepper", "both"):
        out = add_salt_pepper_noise(out, amount, rng)
    return out
