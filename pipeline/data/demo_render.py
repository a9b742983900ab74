"""Procedural identities for the demo dataset: one RGBA object template per identity.

An identity belongs to a *family*. The family fixes the silhouette, the surface pattern and
the palette; each member (a "sibling") differs only in a few details: its glyph label, a
small emblem and a slight shift of the pattern colour. Siblings therefore look alike at a
glance, which makes retrieval fine-grained rather than a colour-matching exercise.

Rendering is vectorised over a pixel grid (numpy) plus a few OpenCV draw calls; a template
is TEMPLATE_SIZE square, straight alpha (0 outside the object).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

TEMPLATE_SIZE = 128
PATTERNS = ("stripes", "checker", "rings", "dots", "waves")
EMBLEMS = ("circle", "square", "triangle", "diamond")
# Glyph alphabet: upper-case letters and digits read well at small sizes in HERSHEY fonts.
_GLYPHS = "ABCDEFGHJKLMNPRSTUVWXYZ23456789"
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX)


@dataclass(frozen=True)
class Family:
    """What all siblings of a family share."""

    harmonics: np.ndarray  # (K, 3): harmonic order, amplitude, phase of the silhouette radius
    squareness: float  # 0 = star-like radial blob, 1 = rounded box
    pattern: str
    pattern_freq: float
    pattern_angle: float
    base: np.ndarray  # RGB float32 in 0..1
    second: np.ndarray
    band_colour: np.ndarray  # glyph band background
    band_y: float  # vertical position of the glyph band, as a fraction of the template
    font: int


@dataclass(frozen=True)
class Sibling:
    """What distinguishes one identity from the rest of its family."""

    glyphs: str
    emblem: str
    emblem_colour: np.ndarray
    emblem_xy: tuple[float, float]
    hue_shift: float  # in 0..1 of the hue circle, applied to the pattern colour


def _random_colour(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
    hsv = np.array(
        [[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]], dtype=np.float32
    )
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _shift_hue(rgb: np.ndarray, shift: float) -> np.ndarray:
    pixel = (rgb[None, None, :] * 255).round().astype(np.uint8)
    hsv = cv2.cvtColor(pixel, cv2.COLOR_RGB2HSV).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + int(round(shift * 180))) % 180
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def make_family(rng: np.random.Generator) -> Family:
    orders = rng.choice(np.arange(2, 7), size=3, replace=False)
    harmonics = np.stack(
        [orders, rng.uniform(0.02, 0.12, size=3), rng.uniform(0, 2 * np.pi, size=3)], axis=1
    ).astype(np.float32)
    base = _random_colour(rng, (0.4, 1.0), (0.45, 1.0))
    second = _random_colour(rng, (0.3, 1.0), (0.2, 0.95))
    # Keep the pattern visible: push the second colour away from the base if they are close.
    if np.abs(base - second).sum() < 0.6:
        second = 1.0 - base
    return Family(
        harmonics=harmonics,
        squareness=float(rng.choice([0.0, 0.0, 0.6, 1.0])),
        pattern=str(rng.choice(PATTERNS)),
        pattern_freq=float(rng.uniform(3.0, 7.0)),
        pattern_angle=float(rng.uniform(0, np.pi)),
        base=base,
        second=second,
        band_colour=_random_colour(rng, (0.0, 0.3), (0.85, 1.0)),
        band_y=float(rng.uniform(0.3, 0.62)),
        font=int(rng.choice(_FONTS)),
    )


def make_sibling(rng: np.random.Generator) -> Sibling:
    return Sibling(
        glyphs="".join(rng.choice(list(_GLYPHS), size=3)),
        emblem=str(rng.choice(EMBLEMS)),
        emblem_colour=_random_colour(rng, (0.7, 1.0), (0.6, 1.0)),
        emblem_xy=(float(rng.uniform(0.3, 0.7)), float(rng.choice([0.22, 0.78]))),
        hue_shift=float(rng.uniform(-0.08, 0.08)),
    )


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1], y down."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    return np.meshgrid(axis, axis)


def _silhouette(family: Family, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    theta = np.arctan2(y, x)
    radius_limit = np.full_like(x, 0.82)
    for order, amplitude, phase in family.harmonics:
        radius_limit += 0.82 * amplitude * np.cos(order * theta + phase)
    # A superellipse norm blends from a circle (p=2) towards a box (p large).
    p = 2.0 + 6.0 * family.squareness
    norm = (np.abs(x) ** p + np.abs(y) ** p) ** (1.0 / p)
    return norm < radius_limit


def _pattern(family: Family, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of the pattern's second-colour area."""
    f = family.pattern_freq
    u = x * np.cos(family.pattern_angle) + y * np.sin(family.pattern_angle)
    v = -x * np.sin(family.pattern_angle) + y * np.cos(family.pattern_angle)
    if family.pattern == "stripes":
        return np.sin(np.pi * f * u) > 0
    if family.pattern == "checker":
        return (np.sin(np.pi * f * u) * np.sin(np.pi * f * v)) > 0
    if family.pattern == "rings":
        return np.sin(np.pi * f * np.hypot(x, y)) > 0
    if family.pattern == "dots":
        cu = u * f / 2 - np.round(u * f / 2)
        cv = v * f / 2 - np.round(v * f / 2)
        return np.hypot(cu, cv) < 0.28
    return np.sin(np.pi * f * u + 1.5 * np.sin(np.pi * 1.5 * v)) > 0.2  # waves


def _draw_emblem(canvas: np.ndarray, sibling: Sibling) -> None:
    size = TEMPLATE_SIZE
    cx, cy = int(sibling.emblem_xy[0] * size), int(sibling.emblem_xy[1] * size)
    r = size // 10
    colour = tuple(float(c) for c in sibling.emblem_colour)
    if sibling.emblem == "circle":
        cv2.circle(canvas, (cx, cy), r, colour, -1, cv2.LINE_AA)
        return
    if sibling.emblem == "square":
        points = [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    elif sibling.emblem == "triangle":
        points = [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    else:
        points = [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    cv2.fillPoly(canvas, [np.array(points, dtype=np.int32)], colour, cv2.LINE_AA)
    cv2.polylines(canvas, [np.array(points, dtype=np.int32)], True, (0.05, 0.05, 0.05), 1, cv2.LINE_AA)


def _draw_glyph_band(canvas: np.ndarray, family: Family, sibling: Sibling) -> None:
    size = TEMPLATE_SIZE
    top = int(family.band_y * size)
    height = size // 5
    canvas[top : top + height, :] = family.band_colour
    scale = cv2.getFontScaleFromHeight(family.font, int(height * 0.7), 2)
    (text_w, text_h), _ = cv2.getTextSize(sibling.glyphs, family.font, scale, 2)
    origin = ((size - text_w) // 2, top + (height + text_h) // 2)
    # putText draws on uint8 only: draw a coverage mask, then blend the ink in.
    ink = np.zeros(canvas.shape[:2], np.uint8)
    cv2.putText(ink, sibling.glyphs, origin, family.font, scale, 255, 2, cv2.LINE_AA)
    coverage = ink[..., None].astype(np.float32) / 255.0
    canvas[:] = canvas * (1 - coverage) + np.float32(0.05) * coverage


def render_identity(family: Family, sibling: Sibling) -> np.ndarray:
    """The identity's object as a float32 RGBA template (TEMPLATE_SIZE², values in 0..1)."""
    x, y = _grid(TEMPLATE_SIZE)
    mask = _silhouette(family, x, y)
    second = _shift_hue(family.second, sibling.hue_shift)
    rgb = np.where(_pattern(family, x, y)[..., None], second, family.base).astype(np.float32)
    _draw_glyph_band(rgb, family, sibling)
    _draw_emblem(rgb, sibling)
    # A dark rim makes the silhouette readable against any background.
    mask_u8 = mask.astype(np.uint8)
    rim = mask_u8 - cv2.erode(mask_u8, np.ones((5, 5), np.uint8))
    rgb[rim.astype(bool)] *= 0.35
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)
    return np.dstack([rgb, alpha])
