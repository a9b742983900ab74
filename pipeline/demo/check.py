"""Do the demo's identity cues survive the cache resolution? Two measures.

``object_fraction``: how much of a rescale-padded cache image the object spans, sampled from
the scene model itself (image size, aspect, scale, tilt, turn), so that a cache size can be
translated into object pixels. ``nearest_sibling_accuracy``: render every sibling of a family
cleanly at a given object size, once jittered (any quarter turn or mirror, a small rotation,
shift and scale) and once not, and ask whether the jittered one's nearest render, by pixel
distance, is itself. Where this fails the cue is below the resolution, whatever the network.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.demo.render import TEMPLATE_SIZE, make_family, render_identity
from pipeline.demo.scene import SceneStyle, image_size, object_corners, object_side

_GREY = np.float32(0.5)


def object_fraction(style: SceneStyle, quantile: float, draws: int = 2000, seed: int = 0) -> float:
    """The ``quantile`` of (object side on screen) / (image long side) over random scenes:
    the object spans about this fraction of a rescale-padded cache image's side."""
    rng = np.random.default_rng(seed)
    fractions = []
    for index in range(draws):
        height, width = image_size(rng, style)
        corners = object_corners(rng, index % style.cameras, style, height, width)
        fractions.append(object_side(corners) / max(height, width))
    return float(np.quantile(fractions, quantile))


def _dihedral(image: np.ndarray, pose: int) -> np.ndarray:
    """Pose 0-7: a quarter turn count (pose % 4), mirrored when pose >= 4."""
    turned = np.rot90(image, pose % 4)
    return np.ascontiguousarray(turned[:, ::-1] if pose >= 4 else turned)


def _on_grey(template: np.ndarray, side: int) -> np.ndarray:
    """The RGBA template composited on mid grey and shrunk to side x side (area averaging)."""
    rgb = template[..., :3] * template[..., 3:] + _GREY * (1 - template[..., 3:])
    return cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)


def _jittered(rng: np.random.Generator, template: np.ndarray) -> np.ndarray:
    """Rotated by up to 20 degrees, scaled by 0.85-1.15, shifted by up to 5 % of the side, and
    lit differently (a gain of 0.85-1.15 per channel): a clean scene's pose and light."""
    centre = (TEMPLATE_SIZE / 2, TEMPLATE_SIZE / 2)
    warp = cv2.getRotationMatrix2D(centre, rng.uniform(-20, 20), rng.uniform(0.85, 1.15))
    warp[:, 2] += rng.uniform(-0.05, 0.05, size=2) * TEMPLATE_SIZE
    out = cv2.warpAffine(template, warp, (TEMPLATE_SIZE, TEMPLATE_SIZE), flags=cv2.INTER_LINEAR, borderValue=0)
    out[..., :3] = np.clip(out[..., :3] * rng.uniform(0.85, 1.15, size=3).astype(np.float32), 0, 1)
    return out


def nearest_sibling_accuracy(rng: np.random.Generator, side: int, families: int, members: int) -> float:
    """Fraction of jittered siblings whose nearest clean sibling render (any of the 8 poses)
    at ``side`` px is themselves, over ``families`` random families of ``members`` siblings."""
    hits = []
    for _ in range(families):
        family = make_family(rng, members)
        templates = [render_identity(family, member) for member in range(members)]
        # (members * 8, side*side*3): every sibling in every pose, so a turn is no excuse.
        gallery = np.stack([_on_grey(_dihedral(t, pose), side).ravel() for t in templates for pose in range(8)])
        for member, template in enumerate(templates):
            query = _on_grey(_dihedral(_jittered(rng, template), int(rng.integers(8))), side).ravel()
            nearest = int(np.argmin(((gallery - query) ** 2).sum(axis=1)))
            hits.append(nearest // 8 == member)
    return float(np.mean(hits))
