"""Procedural identities for the demo dataset: one RGBA object template per identity.

An identity belongs to a *family*. The family fixes everything large: the silhouette, the
body colour and its pattern, and the colour of a label panel. The members ("siblings")
differ only in their *code*: the colours of the 2 x 3 round parts on the panel, drawn from
one palette shared by every family (as product variants share a few flavour colours), so
what a network learns about the parts carries over to identities it has never seen.
Siblings use different numbers of each colour, and differ in at least two parts also after
a mirror or half turn of either one: a flip (test-time augmentation) or an occluded part
never makes two siblings identical.

Generic features see one object per family: the parts are a mid-scale cue (a part is a
sixth of the object wide, about 7 px when the object spans 40 px of the cache image; see
pipeline/demo/check.py and benchmarks/results/bench_demo_calibration.md).

Rendering is vectorised over a pixel grid (numpy) plus a few OpenCV draw calls; a template
is TEMPLATE_SIZE square, straight alpha (0 outside the object).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import cv2
import numpy as np

TEMPLATE_SIZE = 128
PATTERNS = ("stripes", "checker", "rings", "dots", "waves")
CODE_SHAPE = (2, 3)  # rows x columns of parts on the panel
# The parts' palette, the same for every family: red, yellow, blue, near-black.
CODE_PALETTE = np.array([[0.9, 0.1, 0.1], [0.95, 0.85, 0.1], [0.1, 0.25, 0.9], [0.08, 0.08, 0.08]], np.float32)
_PITCH = 0.40  # distance between part centres, in template units ([-1, 1] across)
_PART_RADIUS = 0.16
PART_FRACTION = _PART_RADIUS  # a part's diameter / the template's side (2 units across)
_MIN_CODE_DISTANCE = 2  # parts in which two siblings differ, under every symmetry below
MAX_FAMILY_SIZE = 16  # a greedy draw always found 67 or more codes (20 seeds tried)


@dataclass(frozen=True)
class Family:
    """What all siblings of a family share, and the code of each sibling."""

    harmonics: np.ndarray  # (K, 3): harmonic order, amplitude, phase of the silhouette radius
    squareness: float  # 0 = round blob, 1 = rounded box
    pattern: str
    pattern_freq: float
    pattern_angle: float
    base: np.ndarray  # RGB float32 in 0..1
    second: np.ndarray
    panel: np.ndarray  # colour of the label panel that carries the parts
    codes: tuple[tuple[int, ...], ...]  # one per sibling: CODE_PALETTE index of each part, row-major


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    """One colour; hue in turns (0..1), saturation and value in 0..1."""
    hsv = np.array([[[(hue % 1.0) * 180, saturation * 255, value * 255]]], dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _symmetries(code: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The code and its images under a mirror (either axis) and a half turn of the panel."""
    grid = np.array(code).reshape(CODE_SHAPE)
    return [tuple(int(v) for v in g.ravel()) for g in (grid, grid[:, ::-1], grid[::-1, :], grid[::-1, ::-1])]


def _far_enough(code: tuple[int, ...], chosen: list[tuple[int, ...]]) -> bool:
    return all(
        sorted(code) != sorted(other)
        and all(sum(a != b for a, b in zip(variant, other)) >= _MIN_CODE_DISTANCE for variant in _symmetries(code))
        for other in chosen
    )


def family_codes(rng: np.random.Generator, members: int) -> tuple[tuple[int, ...], ...]:
    """``members`` codes drawn in random order, each far enough from the ones before."""
    candidates = list(product(range(len(CODE_PALETTE)), repeat=CODE_SHAPE[0] * CODE_SHAPE[1]))
    chosen: list[tuple[int, ...]] = []
    for index in rng.permutation(len(candidates)):
        code = candidates[index]
        # One colour everywhere has no arrangement to learn: keep at least two.
        if len(set(code)) > 1 and _far_enough(code, chosen):
            chosen.append(code)
            if len(chosen) == members:
                return tuple(chosen)
    raise ValueError(f"cannot draw {members} distinct codes for one family")


def make_family(rng: np.random.Generator, members: int) -> Family:
    orders = rng.choice(np.arange(2, 7), size=3, replace=False)
    harmonics = np.stack(
        [orders, rng.uniform(0.02, 0.08, size=3), rng.uniform(0, 2 * np.pi, size=3)], axis=1
    ).astype(np.float32)
    base_hue = rng.uniform()
    return Family(
        harmonics=harmonics,
        squareness=float(rng.uniform(0, 1)),
        pattern=str(rng.choice(PATTERNS)),
        pattern_freq=float(rng.uniform(2.5, 5.0)),
        pattern_angle=float(rng.uniform(0, np.pi)),
        base=_hsv_to_rgb(base_hue, rng.uniform(0.6, 1), rng.uniform(0.5, 0.95)),
        second=_hsv_to_rgb(base_hue + rng.uniform(0.25, 0.75), rng.uniform(0.5, 1), rng.uniform(0.3, 0.95)),
        panel=_hsv_to_rgb(rng.uniform(), rng.uniform(0.1, 0.4), rng.uniform(0.85, 1)),
        codes=family_codes(rng, members),
    )


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1], y down."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    return np.meshgrid(axis, axis)


def _silhouette(family: Family, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    theta = np.arctan2(y, x)
    radius_limit = np.full_like(x, 0.9)
    for order, amplitude, phase in family.harmonics:
        radius_limit += 0.9 * amplitude * np.cos(order * theta + phase)
    # A superellipse norm blends from a circle (p=2) towards a box (p large). The bumps (at
    # most 24 %) leave every part inside (a panel corner may be cut).
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


def _to_pixels(value: float) -> int:
    """A length in template units ([-1, 1] across) in pixels."""
    return int(round(value * TEMPLATE_SIZE / 2))


def part_centres() -> list[tuple[int, int]]:
    """Pixel centres of the parts, row-major (the order of a code)."""
    rows, cols = CODE_SHAPE
    return [
        (_to_pixels(1 + (c - (cols - 1) / 2) * _PITCH), _to_pixels(1 + (r - (rows - 1) / 2) * _PITCH))
        for r in range(rows)
        for c in range(cols)
    ]


def _draw_panel(canvas: np.ndarray, family: Family, code: tuple[int, ...]) -> None:
    rows, cols = CODE_SHAPE
    half_w, half_h = _to_pixels(cols * _PITCH / 2 + 0.04), _to_pixels(rows * _PITCH / 2 + 0.04)
    centre = TEMPLATE_SIZE // 2
    corners = (centre - half_w, centre - half_h), (centre + half_w, centre + half_h)
    dark = (0.08, 0.08, 0.08)
    cv2.rectangle(canvas, *corners, tuple(float(v) for v in family.panel), -1)
    cv2.rectangle(canvas, *corners, dark, 2)
    radius = _to_pixels(_PART_RADIUS)
    for (cx, cy), colour in zip(part_centres(), code):
        cv2.circle(canvas, (cx, cy), radius, tuple(float(v) for v in CODE_PALETTE[colour]), -1, cv2.LINE_AA)
        cv2.circle(canvas, (cx, cy), radius, dark, 1, cv2.LINE_AA)


def render_identity(family: Family, member: int) -> np.ndarray:
    """Sibling ``member`` of ``family`` as a float32 RGBA template (TEMPLATE_SIZE², values in 0..1)."""
    x, y = _grid(TEMPLATE_SIZE)
    mask = _silhouette(family, x, y)
    rgb = np.where(_pattern(family, x, y)[..., None], family.second, family.base).astype(np.float32)
    _draw_panel(rgb, family, family.codes[member])
    # A dark rim makes the silhouette readable against any background.
    mask_u8 = mask.astype(np.uint8)
    rim = mask_u8 - cv2.erode(mask_u8, np.ones((5, 5), np.uint8))
    rgb[rim.astype(bool)] *= 0.35
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)
    return np.dstack([rgb, alpha])
