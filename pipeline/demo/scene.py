"""Place an identity's template in a photo-like scene: viewpoint, pose, clutter, light, occlusion.

Each camera is a viewpoint group: the object plane is tilted towards a camera-specific
direction (camera 1 looks at it head-on) and projected with a pinhole model, so images of
one camera share a perspective. On top come a random in-plane rotation (sometimes a whole
quarter turn), scale, position, a cluttered background, a lighting change and, sometimes, an
occluding patch. All randomness comes from the ``rng`` passed in, so a scene is a pure
function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.demo.render import TEMPLATE_SIZE


@dataclass(frozen=True)
class SceneStyle:
    """The scene knobs of DemoConfig that rendering needs."""

    min_size: int
    max_size: int
    aspect_ratio: tuple[float, float]
    object_scale: tuple[float, float]  # object side / shorter image side
    max_tilt_deg: float
    quarter_turn_probability: float
    occlusion_probability: float
    occlusion_fraction: tuple[float, float]
    cameras: int


def image_size(rng: np.random.Generator, style: SceneStyle) -> tuple[int, int]:
    """(height, width): long side uniform in [min_size, max_size], aspect ratio log-uniform."""
    long_side = int(rng.integers(style.min_size, style.max_size + 1))
    aspect = float(np.exp(rng.uniform(*np.log(style.aspect_ratio))))  # width / height
    if aspect >= 1:
        return max(8, round(long_side / aspect)), long_side
    return long_side, max(8, round(long_side * aspect))


def _camera_direction(camera: int, cameras: int) -> tuple[float, float]:
    """Unit tilt direction and strength (0..1) of camera ``camera`` (0-based)."""
    if camera == 0:
        return 0.0, 0.0
    angle = 2 * np.pi * (camera - 1) / max(1, cameras - 1)
    return float(angle), 1.0


def object_corners(rng: np.random.Generator, camera: int, style: SceneStyle, height: int, width: int) -> np.ndarray:
    """Where the template's four corners land in the image (4x2 float32)."""
    half = 0.5
    corners = np.array([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]], np.float64)
    direction, strength = _camera_direction(camera, style.cameras)
    tilt_axis = direction + rng.normal(0, 0.25)
    tilt = np.deg2rad(strength * style.max_tilt_deg * rng.uniform(0.7, 1.0) + rng.uniform(0, 10))
    # Rodrigues rotation about an in-plane axis tilts the plane towards the camera direction.
    axis = np.array([np.cos(tilt_axis), np.sin(tilt_axis), 0.0])
    rot, _ = cv2.Rodrigues(axis * tilt)
    points = corners @ rot.T
    distance = 2.2
    projected = points[:, :2] * distance / (points[:, 2:3] + distance)

    turns = int(rng.integers(1, 4)) if rng.random() < style.quarter_turn_probability else 0
    spin = np.deg2rad(90 * turns + rng.uniform(-20, 20))
    c, s = np.cos(spin), np.sin(spin)
    projected = projected @ np.array([[c, s], [-s, c]])

    short = min(height, width)
    scale = short * rng.uniform(*style.object_scale)
    extent = projected.max(axis=0) - projected.min(axis=0)
    # Shrink if the pose's bounding box would not fit: the object may touch, not leave, the frame.
    scale = min(scale, 0.98 * width / extent[0], 0.98 * height / extent[1])
    projected = (projected - projected.mean(axis=0)) * scale
    lo, hi = projected.min(axis=0), projected.max(axis=0)
    centre = np.array(
        [rng.uniform(-lo[0], width - hi[0]), rng.uniform(-lo[1], height - hi[1])]
    )
    return (projected + centre).astype(np.float32)


def object_side(corners: np.ndarray) -> float:
    """The longest edge of the template's on-screen quadrilateral, in pixels."""
    return float(np.linalg.norm(np.diff(corners, axis=0, append=corners[:1]), axis=1).max())


def _smooth_field(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a few random values upsampled smoothly."""
    small = rng.random((cells, cells), dtype=np.float32)
    return np.clip(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), 0, 1)


def _muted(colour: np.ndarray) -> np.ndarray:
    """Half way to mid grey: a background that does not outshine the object."""
    return 0.5 * colour + 0.25


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    first, second = _muted(rng.random(3, dtype=np.float32)), _muted(rng.random(3, dtype=np.float32))
    t = _smooth_field(rng, height, width, int(rng.integers(2, 6)))[..., None]
    canvas = np.ascontiguousarray(first * (1 - t) + second * t, dtype=np.float32)
    # Clutter: shapes of every colour, a few of them patterned like objects, so that colour
    # and texture alone cannot separate object from background.
    for _ in range(int(rng.integers(2, 8))):
        colour = tuple(float(v) for v in rng.random(3))
        kind = rng.integers(0, 4)
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(3, max(4, min(height, width) // 5)))
        if kind == 0:
            cv2.circle(canvas, (x, y), r, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(canvas, (x - r, y - r // 2), (x + r, y + r // 2), colour, -1)
        elif kind == 2:
            x2, y2 = int(rng.integers(0, width)), int(rng.integers(0, height))
            cv2.line(canvas, (x, y), (x2, y2), colour, int(rng.integers(1, 5)), cv2.LINE_AA)
        else:
            points = rng.integers(-r, r + 1, size=(5, 2)) + np.array([x, y])
            cv2.fillPoly(canvas, [points.astype(np.int32)], colour, cv2.LINE_AA)
    return canvas


def _lighting(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Gamma, contrast, brightness and a colour-cast gradient across the frame."""
    height, width = rgb.shape[:2]
    out = np.power(np.clip(rgb, 0, 1), rng.uniform(0.8, 1.25))
    out = (out - 0.5) * rng.uniform(0.8, 1.15) + 0.5 + rng.uniform(-0.1, 0.1)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (xs / width - 0.5) * np.cos(angle) + (ys / height - 0.5) * np.sin(angle) + 0.5
    start, end = rng.uniform(0.92, 1.08, size=3), rng.uniform(0.92, 1.08, size=3)
    gain = start + (end - start) * ramp[..., None]
    return out * gain.astype(np.float32)


def _occlude(rng: np.random.Generator, rgb: np.ndarray, corners: np.ndarray, style: SceneStyle) -> None:
    """Cover 10-30% (by default) of the object's bounding box with a clutter patch, in place."""
    height, width = rgb.shape[:2]
    x0, y0 = np.clip(corners.min(axis=0), 0, [width - 1, height - 1]).astype(int)
    x1, y1 = np.clip(corners.max(axis=0), 1, [width, height]).astype(int)
    box_w, box_h = max(1, x1 - x0), max(1, y1 - y0)
    area = rng.uniform(*style.occlusion_fraction) * box_w * box_h
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    patch_w = int(np.clip(round(np.sqrt(area * aspect)), 1, box_w))
    patch_h = int(np.clip(round(area / patch_w), 1, box_h))
    # Enter from a side of the box, like a hand or a shelf edge, rather than a hole in the middle.
    px = x0 if rng.random() < 0.5 else x1 - patch_w
    py = int(rng.integers(y0, y1 - patch_h + 1))
    if rng.random() < 0.5:
        px = int(rng.integers(x0, x1 - patch_w + 1))
        py = y0 if rng.random() < 0.5 else y1 - patch_h
    patch = _background(rng, patch_h, patch_w)
    rgb[py : py + patch_h, px : px + patch_w] = patch


def render_scene(rng: np.random.Generator, template: np.ndarray, camera: int, style: SceneStyle) -> np.ndarray:
    """One RGB uint8 image of ``template`` (float RGBA) seen from ``camera`` (0-based)."""
    height, width = image_size(rng, style)
    corners = object_corners(rng, camera, style, height, width)
    # Shrink the template to about its on-screen size first: a perspective warp samples
    # bilinearly and would alias a large template onto a small object.
    side = int(np.ceil(object_side(corners)))
    if side < TEMPLATE_SIZE:
        template = cv2.resize(template, (side, side), interpolation=cv2.INTER_AREA)
    size = template.shape[0]
    source = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float32)
    warp = cv2.getPerspectiveTransform(source, corners)
    obj = cv2.warpPerspective(
        template, warp, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    alpha = obj[..., 3:4]
    rgb = _background(rng, height, width) * (1 - alpha) + obj[..., :3] * alpha
    if rng.random() < style.occlusion_probability:
        _occlude(rng, rgb, corners, style)
    rgb = _lighting(rng, rgb)
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
