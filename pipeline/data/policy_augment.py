"""timm's AutoAugment / RandAugment / AugMix (``timm.data.auto_augment``, as FastReID uses) as
an albumentations transform, so that they take part in the per-sample seeding of
``SeededAugment`` like every other transform.

timm's policies work on PIL images and draw from the global ``random`` and ``numpy.random``
generators; each call seeds both from this transform's own generator and restores them after,
so a policy's draw depends only on the sample's seed and leaves other code's randomness alone.

Known clash (timm 1.0.31 with Pillow 13): the "increasing" RandAugment ops (``-inc1``) ask
``ImageOps.posterize`` for 0 bits at magnitude 10, which Pillow 13 refuses with a ValueError;
``rand-m9-mstd0.5`` (posterize keeps 3-4 bits at m9) does not hit it.
"""

from __future__ import annotations

import random
from typing import Any

import albumentations as A
import numpy as np
from PIL import Image

from pipeline.core.errors import ConfigError


def timm_policy(policy: str, side: int, fill: tuple[float, float, float]) -> Any:
    """timm's transform for a policy string, chosen by its prefix as timm's own transform factory does."""
    from pipeline.core.compat import import_timm  # here: importing the transforms must not import torch

    auto_augment = import_timm().data.auto_augment
    # timm's defaults: translations up to 45 % of the side, empty area filled with the mean pixel
    hparams = {"translate_const": int(side * 0.45), "img_mean": tuple(int(round(v)) for v in fill)}
    try:
        if policy.startswith("rand"):
            return auto_augment.rand_augment_transform(policy, hparams)
        if policy.startswith("augmix"):
            return auto_augment.augment_and_mix_transform(policy, hparams)
        return auto_augment.auto_augment_transform(policy, hparams)
    except (AssertionError, KeyError, ValueError, IndexError) as error:
        raise ConfigError(
            f"augment.auto_augment: {policy!r} is not a timm policy string "
            f"(e.g. 'rand-m9-mstd0.5', 'original', 'v0', 'augmix-m5-w4-d2'): {error!r}"
        ) from error


class TimmPolicy(A.ImageOnlyTransform):
    def __init__(self, policy: str, side: int, fill: tuple[float, float, float], p: float = 1.0) -> None:
        super().__init__(p=p)
        self.policy, self.side, self.fill = policy, side, fill
        self.transform = timm_policy(policy, side, fill)

    def get_params(self) -> dict[str, Any]:
        return {"policy_seed": self.py_random.randrange(2**32)}

    def apply(self, img: np.ndarray, policy_seed: int, **params: Any) -> np.ndarray:
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            random.seed(policy_seed)
            np.random.seed(policy_seed)
            return np.asarray(self.transform(Image.fromarray(img)))
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("policy", "side", "fill")
