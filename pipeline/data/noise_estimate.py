"""Detect what noise an RGB image carries: none, Gaussian, salt-and-pepper or both.

Two measurements, each built to ignore image content:

- **Impulses** (salt-and-pepper) are black or white pixels (every channel at or near 0, or
  every channel at or near 255, as a dead or saturated sensor pixel) that differ strongly
  from the 3x3 per-channel median. Saturated areas and black outlines in a clean image sit
  next to equally extreme neighbours, so their median is extreme too and they are not
  counted. The "differs strongly" bar rises with the Gaussian sigma (``_IMPULSE_SIGMAS``),
  so a clipped Gaussian tail is not mistaken for impulses.
- **Gaussian sigma** is the median absolute response of Immerkaer's Laplacian-difference
  kernel (zero on any locally linear surface, variance 36 sigma^2 on white noise),
  taken only over the flatter half of the image (lowest Sobel gradient of a lightly blurred
  copy) and with pixels near detected impulses left out. Edges and texture therefore
  barely move it; on the real grocery photos this estimate is ~2 for clean JPEGs and within
  ~5% of the true sigma for added noise of sigma 10-30 (see benchmarks/bench_denoise.py).
  Hand-written because neither OpenCV nor scikit-image (not a dependency) offers a noise
  estimator robust to texture; PCA-based estimators (Chen et al. 2015) were tried and were
  worse on 128 px images, whose patch count is small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

NoiseKind = Literal["none", "gaussian", "salt_pepper", "both"]

# Thresholds set between clean and noisy on the demo data and the grocery photos (see
# benchmarks/results/bench_denoise.md): clean sigma estimates stay below 0.5 on the demo and
# below 5.7 on 99% of the grocery JPEGs (fine texture survives the flat-half selection);
# demo sigma >= 10 is estimated at >= 7.6. Clean impulse fractions stay below 0.003; demo
# salt-and-pepper (amount >= 0.02) is measured at >= 0.014.
DEFAULT_GAUSSIAN_THRESHOLD = 6.0  # sigma (0-255 scale) at or above which an image counts as Gaussian-noisy
DEFAULT_IMPULSE_THRESHOLD = 0.006  # share of impulse pixels at or above which it counts as salt-and-pepper

# Immerkaer's kernel: second differences in x and y combined; sum of squares 36.
_LAPLACE_DIFF = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
_MAD_TO_SIGMA = 1.0 / (0.6745 * 6.0)  # median |N(0, 36 sigma^2)| = 0.6745 * 6 sigma
_FLAT_FRACTION = 0.5  # share of pixels (lowest gradient) the sigma estimate looks at
_IMPULSE_MIN_JUMP = 40.0  # an impulse differs from its median by at least this much ...
_IMPULSE_SIGMAS = 4.0  # ... and by at least this many Gaussian sigmas
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


def estimate_sigma(rgb: np.ndarray, exclude: np.ndarray | None = None) -> float:
    """Gaussian noise sigma of ``rgb`` (median over channels); ``exclude`` (H, W) marks pixels to ignore."""
    valid = np.ones(rgb.shape[:2], dtype=bool)
    if exclude is not None and exclude.any():
        # Every kernel response that touches an excluded pixel is unusable.
        valid = cv2.dilate(exclude.astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
    valid = valid[1:-1, 1:-1]
    if valid.sum() < 16:
        return 0.0
    sigmas = []
    for c in range(3):
        channel = rgb[..., c].astype(np.float32)
        response = cv2.filter2D(channel, -1, _LAPLACE_DIFF)[1:-1, 1:-1]
        smooth = cv2.GaussianBlur(channel, (3, 3), 0)
        gradient = (cv2.Sobel(smooth, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(smooth, cv2.CV_32F, 0, 1) ** 2)[1:-1, 1:-1]
        gradient = gradient[valid]
        flat = gradient <= np.quantile(gradient, _FLAT_FRACTION)
        sigmas.append(float(np.median(np.abs(response[valid][flat]))) * _MAD_TO_SIGMA)
    return float(np.median(sigmas))


def estimate_noise(
    rgb: np.ndarray,
    gaussian_threshold: float = DEFAULT_GAUSSIAN_THRESHOLD,
    impulse_threshold: float = DEFAULT_IMPULSE_THRESHOLD,
) -> NoiseEstimate:
    """Classify the noise of an RGB uint8 (H, W, 3) image and estimate its level."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 3:
        raise ValueError(f"estimate_noise expects an RGB uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    # Pass 1: obvious impulses (a fixed jump), so they cannot inflate the sigma estimate.
    candidates = impulse_mask(rgb)
    sigma = estimate_sigma(rgb, exclude=candidates)
    # Pass 2: with sigma known, the impulse test tolerates Gaussian noise on both sides.
    impulses = impulse_mask(rgb, sigma)
    if not np.array_equal(impulses, candidates):
        sigma = estimate_sigma(rgb, exclude=impulses)
    fraction = float(impulses.mean())
    noisy_gaussian = sigma >= gaussian_threshold
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
