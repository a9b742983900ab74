"""Training augmentation, built from config with albumentations 2.x.

Every transform is seeded per sample (``SeededAugment``) from the seed the PK sampler
hands out, so an epoch's augmentations depend only on ``(seed, epoch)``: not on the number
of loader workers, and a resumed run sees exactly what an uninterrupted one would have.
Images stay uint8 HxWx3 RGB here; normalisation happens on the batch in torch
(``pipeline.data.torch_data.normalize_batch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import albumentations as A
import cv2
import numpy as np

from pipeline.data.policy_augment import TimmPolicy
from pipeline.data.repair_augment import DeGaussian, DePepper
from pipeline.core.sections import ImageSize, height_width

IMAGENET_MEAN_PIXEL = (124.0, 116.0, 104.0)  # erased areas become ~0 after normalisation


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (``*_p``) of 0 switch a transform off."""

    hflip_p: float = 0.5
    vflip_p: float = 0.0
    affine_p: float = 0.0
    shift: float = 0.05  # fraction of the side, both directions
    scale: tuple[float, float] = (0.9, 1.1)
    rotate: float = 10.0  # degrees, both directions
    perspective_p: float = 0.0
    perspective_scale: tuple[float, float] = (0.02, 0.05)
    rotate90_p: float = 0.0
    channel_shuffle_p: float = 0.0
    color_jitter_p: float = 0.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05
    # random erasing, defaults from the strong re-id baseline (Luo et al. 2019)
    erasing_p: float = 0.5
    erasing_area: tuple[float, float] = (0.02, 0.4)
    erasing_aspect: tuple[float, float] = (0.3, 3.33)
    erasing_fill: tuple[float, float, float] = IMAGENET_MEAN_PIXEL
    random_patch_p: float = 0.0
    random_patch_area: tuple[float, float] = (0.01, 0.2)
    random_patch_pool: int = 1000
    # the denoise stage's repairs on clean training images (DIGIX 2020 2nd: DeGaussian / DePepper)
    degaussian_p: float = 0.0
    degaussian_sigma: tuple[float, float] = (5.0, 25.0)  # noise sigma (0-255) the filter is set for
    degaussian_method: Literal["nlmeans", "bilateral"] = "nlmeans"  # as params.yaml denoise.gaussian_method
    depepper_p: float = 0.0
    depepper_density: tuple[float, float] = (0.01, 0.1)  # fraction of pixels median-filled
    # timm's policy string, e.g. "rand-m9-mstd0.5" (RandAugment), "original" (AutoAugment); None: off
    auto_augment: str | None = None

    def validate(self) -> None:
        for name in (
            "hflip_p", "vflip_p", "affine_p", "perspective_p", "rotate90_p",
            "channel_shuffle_p", "color_jitter_p", "erasing_p", "random_patch_p",
            "degaussian_p", "depepper_p",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("erasing_area", "random_patch_area"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high < 1.0:
                raise ValueError(f"{name} must satisfy 0 < low <= high < 1, got {(low, high)}")
        if self.random_patch_pool < 1:
            raise ValueError("random_patch_pool must be at least 1")
        low, high = self.degaussian_sigma
        if not 0.0 < low <= high:
            raise ValueError(f"degaussian_sigma must satisfy 0 < low <= high, got {(low, high)}")
        low, high = self.depepper_density
        if not 0.0 < low <= high < 1.0:
            raise ValueError(f"depepper_density must satisfy 0 < low <= high < 1, got {(low, high)}")
        if self.auto_augment is not None and not self.auto_augment.strip():
            raise ValueError("auto_augment must be a timm policy string or null")


class RandomPatch(A.ImageOnlyTransform):
    """Paste a patch cut from an earlier image at a random place (fast-reid's RandomPatch).

    Not in albumentations. Every call also cuts a patch of the current image into a bounded
    pool; ``reset()`` empties it (the loader does at each epoch start, so that a resumed run
    and an uninterrupted one see the same pool).
    """

    def __init__(self, area: tuple[float, float], pool_size: int, p: float = 0.5) -> None:
        super().__init__(p=p)
        self.area = area
        self.pool_size = pool_size
        self.pool: list[np.ndarray] = []

    def reset(self) -> None:
        self.pool.clear()

    def _box(self, height: int, width: int) -> tuple[int, int, int, int]:
        area = self.py_random.uniform(*self.area) * height * width
        aspect = np.exp(self.py_random.uniform(np.log(0.3), np.log(1 / 0.3)))
        h = int(min(height, max(1, round(np.sqrt(area / aspect)))))
        w = int(min(width, max(1, round(np.sqrt(area * aspect)))))
        return self.py_random.randint(0, height - h), self.py_random.randint(0, width - w), h, w

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> dict[str, Any]:
        # The pool must see every image, applied or not, so it is filled before ``p`` is drawn.
        image = kwargs["image"]
        top, left, h, w = self._box(*image.shape[:2])
        patch = image[top : top + h, left : left + w].copy()
        result = super().__call__(*args, force_apply=force_apply, **kwargs)
        self.pool.append(patch)
        if len(self.pool) > self.pool_size:
            self.pool.pop(self.py_random.randrange(len(self.pool)))
        return result

    def get_params(self) -> dict[str, Any]:
        return {"draw": self.py_random.random(), "where": (self.py_random.random(), self.py_random.random())}

    def apply(self, img: np.ndarray, draw: float, where: tuple[float, float], **params: Any) -> np.ndarray:
        if not self.pool:
            return img
        patch = self.pool[int(draw * len(self.pool))]
        h, w = min(patch.shape[0], img.shape[0]), min(patch.shape[1], img.shape[1])
        top = int(where[0] * (img.shape[0] - h + 1))
        left = int(where[1] * (img.shape[1] - w + 1))
        out = img.copy()
        out[top : top + h, left : left + w] = patch[:h, :w]
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("area", "pool_size")


def resize_transform(size: ImageSize) -> A.BasicTransform:
    """Cache images have the box shape already (rescale-pad); only the scale may differ."""
    height, width = height_width(size)
    return A.Resize(height=height, width=width, interpolation=cv2.INTER_AREA, p=1.0)


def build_train_transforms(config: AugmentConfig, input_size: ImageSize) -> list[A.BasicTransform]:
    """The enabled transforms in order: denoise repairs (at the cache's resolution, as the
    denoise stage repairs before preprocessing), resize, policy, geometry, colour, occlusion."""
    c = config
    repairs = [
        make(p) for p, make in (
            (c.degaussian_p, lambda p: DeGaussian(c.degaussian_sigma, c.degaussian_method, p=p)),
            (c.depepper_p, lambda p: DePepper(c.depepper_density, p=p)),
        ) if p > 0
    ]
    policy = [] if c.auto_augment is None else [TimmPolicy(c.auto_augment, min(height_width(input_size)), c.erasing_fill)]
    steps: list[tuple[float, Any]] = [
        (c.hflip_p, lambda p: A.HorizontalFlip(p=p)),
        (c.vflip_p, lambda p: A.VerticalFlip(p=p)),
        (c.rotate90_p, lambda p: A.RandomRotate90(p=p)),
        (c.affine_p, lambda p: A.Affine(
            translate_percent=(-c.shift, c.shift), scale=c.scale, rotate=(-c.rotate, c.rotate),
            border_mode=cv2.BORDER_CONSTANT, fill=c.erasing_fill, p=p,
        )),
        (c.perspective_p, lambda p: A.Perspective(
            scale=c.perspective_scale, border_mode=cv2.BORDER_CONSTANT, fill=c.erasing_fill, p=p,
        )),
        (c.channel_shuffle_p, lambda p: A.ChannelShuffle(p=p)),
        (c.color_jitter_p, lambda p: A.ColorJitter(
            brightness=c.brightness, contrast=c.contrast, saturation=c.saturation, hue=c.hue, p=p,
        )),
        (c.random_patch_p, lambda p: RandomPatch(c.random_patch_area, c.random_patch_pool, p=p)),
        (c.erasing_p, lambda p: A.Erasing(
            scale=c.erasing_area, ratio=c.erasing_aspect, fill=c.erasing_fill, p=p,
        )),
    ]
    return repairs + [resize_transform(input_size)] + policy + [make(p) for p, make in steps if p > 0]


class SeededAugment:
    """Apply a list of transforms to a uint8 RGB image with a per-sample seed.

    ``Compose.set_random_seed`` gives every child the same seed, which would correlate
    their random draws (a flip would always come with a channel shuffle), so each child is
    seeded from its own stream of a ``SeedSequence``.
    """

    def __init__(self, transforms: list[A.BasicTransform]) -> None:
        self.transforms = transforms
        self.compose = A.Compose(transforms)

    def reset(self) -> None:
        for transform in self.transforms:
            if isinstance(transform, RandomPatch):
                transform.reset()

    def __call__(self, image: np.ndarray, seed: int) -> np.ndarray:
        seeds = np.random.SeedSequence(seed).generate_state(len(self.transforms))
        for transform, child_seed in zip(self.transforms, seeds):
            transform.set_random_seed(int(child_seed))
        return self.compose(image=image)["image"]
