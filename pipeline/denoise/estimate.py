"""Detect what noise an RGB image carries: none, Gaussian, salt-and-pepper or both.

Two measurements, each built to ignore image content:

- **Impulses** (salt-and-pepper) are black or white pixels (every channel at or near 0, or
  every channel at or near 255, as a dead or saturated sensor pixel) that differ strongly
  from the 3x3 per-channel median. Saturated areas and black outlines in a clean image sit
  next to equally extreme neighbours, so their median is extreme too and they are not
  counted. The "differs strongly" bar rises with the Gaussian sigma (``_IMPULSE_SIGMAS``),
  so a clipped Gaussian tail is not mistaken for impulses.
- **Gaussian sigma** comes from the median absolute response of Immerkaer's
  Laplacian-difference kernel (zero on any locally linear surface, variance 36 sigma^2 on
  white noise), with pixels near detected impulses left out, measured two ways:

  * on the two **colour-difference** (opponent chroma) channels, ``(R-G)/sqrt2`` and
    ``(R+G-2B)/sqrt6``, over their flatter half (as below). These are orthonormal, so
    noise drawn per channel keeps its sigma there, while the colour of real photos is
    smooth at the pixel scale (JPEG even stores it at half resolution): clean grocery
    photos measure below 0.9, noise of sigma 4 above 3.7 (benchmarks/bench_denoise_real.py).
    This is the detector, and its value the repair strength, for noise drawn per channel;
  * on each RGB channel over the flatter half of the image (lowest Sobel gradient of a
    lightly blurred copy), median over channels. Texture moves this one more (clean
    grocery photos: median 1.7, up to 10), so it only catches noise that is the same in
    every channel (grey noise, invisible to the chroma measure), above a higher threshold.
  Hand-written because neither OpenCV nor scikit-image (not a dependency) offers a noise
  estimator robust to texture; PCA-based estimators (Chen et al. 2015) were tried and were
  worse on 128 px images, whose patch count is small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from pipeline.sections import DEFAULT_GAUSSIAN_THRESHOLD, DEFAULT_GREY_THRESHOLD, DEFAULT_IMPULSE_THRESHOLD


NoiseKind = Literal["none", "gaussian", "salt_pepper", "both"]

# Immerkaer's kernel: second differences in x and y combined; sum of squares 36.
_LAPLACE_DIFF = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
# RGB -> the two orthonormal colour-difference axes (rows have unit norm, orthogonal to grey).
_CHROMA = np.array([[1, -1, 0], [1, 1, -2]], dtype=np.float32) / np.array([[2**0.5], [6**0.5]], dtype=np.float32)
_MAD_TO_SIGMA = 1.0 / (0.6745 * 6.0)  # median |N(0, 36 sigma^2)| = 0.6745 * 6 sigma
_FLAT_FRACTION = 0.5  # share of pixels (lowest gradient) the sigma estimate looks at
_IMPULSE_MIN_JUMP = 40.0  # an impulse differs from its median by at least this much ...
_IMPULSE_SIGMAS = 4.0  # ... and by at least this many Gaussian sigmas
_MIN_VISIBLE = 0.25  # impulse_share corrects its count by at most 1 / this
_EXTREME_MIN_TOL = 4.0  # "near 0/255": within this many grey levels ...
_EXTREME_SIGMAS = 2.0  # ... or this many sigmas (Gaussian noise added on top of impulses)


@dataclass(frozen=True)
class NoiseEstimate:
    """What was found in one image. ``sigma`` is on the 0-255 scale; ``impulse_fraction`` is
    the share of pixels found to be impulses."""

    kind: NoiseKind
    sigma: float
    impulse_fraction: float


def impulse_mask(rgb: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """Boolean (H, W): black or white pixels that jump out of their 3x3 median, given the Gaussian ``sigma``."""
    median = cv2.medianBlur(rgb, 3).astype(np.int16)
    values = rgb.astype(np.int16)
    tol = max(_EXTREME_MIN_TOL, _EXTREME_SIGMAS * sigma)
    # Whole black/white pixels only: single saturated channels are common in real photos
    # (bright reds, specular highlights) and counting them gave 8% false alarms on the
    # grocery JPEGs; whole black/white outliers gave none.
    extreme = (values <= tol).all(axis=2) | (values >= 255 - tol).all(axis=2)
    jump = max(_IMPULSE_MIN_JUMP, _IMPULSE_SIGMAS * sigma)
    return extreme & (np.abs(values - median).max(axis=2) >= jump)


def impulse_share(rgb: np.ndarray, impulses: np.ndarray, sigma: float = 0.0) -> float:
    """Share of pixels that are impulses, from the ``impulses`` found where they can be found.

    A white impulse only jumps out of a neighbourhood darker than 255 - jump, a black one out
    of one brighter than jump; with strong Gaussian noise (a large jump) bright and dark areas
    hide them, and the raw count would read 1% salt-and-pepper as 0.4%. The count is divided
    by the share of pixels where an impulse (white or black, equally likely) would be found,
    at most 4x, so a nearly all-white or all-black image is not blown up.
    """
    median = cv2.medianBlur(rgb, 3)
    jump = max(_IMPULSE_MIN_JUMP, _IMPULSE_SIGMAS * sigma)
    white_visible = (median.min(axis=2) <= 255 - jump).mean()
    black_visible = (median.max(axis=2) >= jump).mean()
    visible = 0.5 * (white_visible + black_visible)
    return float(impulses.mean()) / max(visible, _MIN_VISIBLE)


def _flat_sigma(channel: np.ndarray, valid: np.ndarray) -> float:
    """Noise sigma of one float32 channel: median |kernel response| over its flatter half."""
    response = cv2.filter2D(channel, -1, _LAPLACE_DIFF)[1:-1, 1:-1]
    smooth = cv2.GaussianBlur(channel, (3, 3), 0)
    gradient = (cv2.Sobel(smooth, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(smooth, cv2.CV_32F, 0, 1) ** 2)[1:-1, 1:-1]
    gradient = gradient[valid]
    flat = gradient <= np.quantile(gradient, _FLAT_FRACTION)
    return float(np.median(np.abs(response[valid][flat]))) * _MAD_TO_SIGMA


def _valid_responses(exclude: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Where a 3x3 kernel response (image without its border) touches no excluded pixel."""
    valid = np.ones(shape, dtype=bool)
    if exclude is not None and exclude.any():
        valid = cv2.dilate(exclude.astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
    return valid[1:-1, 1:-1]


def estimate_sigma(rgb: np.ndarray, exclude: np.ndarray | None = None) -> float:
    """Gaussian noise sigma of ``rgb`` (median over channels); ``exclude`` (H, W) marks pixels to ignore."""
    valid = _valid_responses(exclude, rgb.shape[:2])
    if valid.sum() < 16:
        return 0.0
    return float(np.median([_flat_sigma(rgb[..., c].astype(np.float32), valid) for c in range(3)]))


def estimate_chroma_sigma(rgb: np.ndarray, exclude: np.ndarray | None = None) -> float:
    """Per-channel Gaussian sigma as the two colour-difference channels show it (module docstring)."""
    valid = _valid_responses(exclude, rgb.shape[:2])
    if valid.sum() < 16:
        return 0.0
    chroma = rgb.astype(np.float32) @ _CHROMA.T  # (H, W, 2)
    return float(np.mean([_flat_sigma(np.ascontiguousarray(chroma[..., c]), valid) for c in range(2)]))


def estimate_noise(
    rgb: np.ndarray,
    gaussian_threshold: float = DEFAULT_GAUSSIAN_THRESHOLD,
    impulse_threshold: float = DEFAULT_IMPULSE_THRESHOLD,
    grey_threshold: float = DEFAULT_GREY_THRESHOLD,
) -> NoiseEstimate:
    """Classify the noise of an RGB uint8 (H, W, 3) image and estimate its level.

    ``sigma`` is the chroma estimate when that one finds noise, else the per-channel one.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 3:
        raise ValueError(f"estimate_noise expects an RGB uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")

    def sigmas(exclude: np.ndarray) -> tuple[float, float]:
        return estimate_chroma_sigma(rgb, exclude), estimate_sigma(rgb, exclude)

    # Pass 1: obvious impulses (a fixed jump), so they cannot inflate the sigma estimates.
    candidates = impulse_mask(rgb)
    chroma, grey = sigmas(candidates)
    sigma = chroma if chroma >= gaussian_threshold else grey
    # Pass 2: with sigma known, the impulse test tolerates Gaussian noise on both sides.
    impulses = impulse_mask(rgb, sigma)
    if not np.array_equal(impulses, candidates):
        chroma, grey = sigmas(impulses)
    noisy_gaussian = chroma >= gaussian_threshold or grey >= grey_threshold
    sigma = chroma if chroma >= gaussian_threshold else grey
    fraction = impulse_share(rgb, impulses, sigma)
    noisy_impulse = fraction >= impulse_threshold
    kind: NoiseKind
    if noisy_gaussian and noisy_impulse:
        kind = "both"
    elif noisy_impulse:
        kind = "salt_pepper"
    elif noisy_gaussian:
        kind = "gaussian"
    else:
        kind = "none"
    return NoiseEstimate(kind=kind, sigma=round(sigma, 3), impulse_fraction=round(fraction, 6))
