"""Detect what noise an RGB image carries: none, Gaussian, salt-and-pepper or both.

Two measurements, each built to ignore image content:

- **Impulses** (salt-and-pepper) are black or white pixels (every channel at or near 0, or
  every channel at or near 255, as a dead or saturated sensor pixel) that differ strongly
  from the 3x3 per-channel median (``impulse_mask``: what the repair fills and the sigma
  estimates leave out). Saturated areas and black outlines in a clean image sit next to
  equally extreme neighbours, so their median is extreme too. The "differs strongly" bar
  rises with the Gaussian sigma (``_IMPULSE_SIGMAS``), so a clipped Gaussian tail is not
  mistaken for impulses. Whether an image *has* impulse noise is decided on a stricter count
  (``impulse_share``): sharpened, downscaled or JPEG-compressed clean crops have many pixels
  the median test flags (edge overshoot, one-pixel texture), but those sit next to an equally
  extreme pixel or among neighbours that disagree with each other, where impulses, which
  strike independently of the picture, are no likelier than anywhere else.
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

from pipeline.core.sections import DEFAULT_GAUSSIAN_THRESHOLD, DEFAULT_GREY_THRESHOLD, DEFAULT_IMPULSE_THRESHOLD


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
_AGREE_MIN = 24.0  # an impulse is counted where its neighbours' middle spread is at most this ...
_AGREE_SIGMAS = 3.0  # ... or this many sigmas (impulse_share)
_SHIFTS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


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


def _neighbours(values: np.ndarray) -> np.ndarray:
    """The 8 neighbours of every interior pixel of (H, W, ...) ``values``: (8, H-2, W-2, ...)."""
    height, width = values.shape[:2]
    return np.stack([values[1 + dy : height - 1 + dy, 1 + dx : width - 1 + dx] for dy, dx in _SHIFTS])


def impulse_share(rgb: np.ndarray, sigma: float = 0.0) -> float:
    """Share of pixels that are salt-and-pepper impulses, counted where content cannot mimic them.

    Impulse noise hits pixels independently of the picture and of each other, so its share is
    the same in every part of the image, and it is counted only where clean content does not
    make lone black/white pixels (benchmarks/results/denoise_person.md):

    - **isolated**: the pixel differs by ``jump`` from every one of its 8 neighbours, not only
      from their median. Edge overshoot of sharpening, clipped highlights and dark outlines come
      in runs along an edge: on sharpened person crops the closest neighbour of 90 % of the
      pixels the median test flagged was within 13 grey levels of it;
    - **in agreeing surroundings**: the middle spread of the 8 neighbours (their 6th minus 3rd
      value, worst channel; two impulses among them do not move it) is at most
      max(``_AGREE_MIN``, ``_AGREE_SIGMAS`` sigma). Pixel-scale texture (a checked shirt at
      32 x 64, sharpened) makes isolated extremes where the neighbours disagree.

    The count is divided by the share of pixels where an impulse would pass both tests, white
    and black equally likely, measured on the image itself (so Gaussian noise and neighbours
    that are impulses too are accounted for), at most 4x. Border pixels, short of neighbours,
    are left out of both.
    """
    values = rgb.astype(np.int16)
    if min(values.shape[:2]) < 3:
        return 0.0
    tol = max(_EXTREME_MIN_TOL, _EXTREME_SIGMAS * sigma)
    jump = max(_IMPULSE_MIN_JUMP, _IMPULSE_SIGMAS * sigma)
    centre, around = values[1:-1, 1:-1], _neighbours(values)
    ordered = np.sort(around, axis=0)  # per channel, ascending over the 8 neighbours
    agree = (ordered[5] - ordered[2]).max(axis=-1) <= max(_AGREE_MIN, _AGREE_SIGMAS * sigma)
    extreme = (centre <= tol).all(axis=2) | (centre >= 255 - tol).all(axis=2)
    isolated = (np.abs(around - centre).max(axis=-1) >= jump).all(axis=0)
    # Where an impulse would be found: pure white differs from a neighbour by 255 minus its
    # darkest channel, pure black by its brightest channel.
    white_visible = agree & (around.min(axis=-1) <= 255 - jump).all(axis=0)
    black_visible = agree & (around.max(axis=-1) >= jump).all(axis=0)
    visible = 0.5 * (white_visible.mean() + black_visible.mean())
    return float((extreme & isolated & agree).mean()) / max(float(visible), _MIN_VISIBLE)


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
    fraction = impulse_share(rgb, sigma)
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
