"""DeGaussian / DePepper (DIGIX 2020 second place): the denoiser's own repairs, applied at
training time to clean images, so that the smoothing and median-filled pixels the denoise stage
leaves on noisy query and gallery images are not a cue the network can learn.

Both call the repair code of the denoise stage (``pipeline.denoise.repair``) itself, with
the settings of ``DenoiseConfig`` (defaults, or the method the recipe names): DeGaussian is
``repair`` as if the image carried Gaussian noise of a drawn sigma; DePepper is the switching
median ``fill_impulses`` at a drawn fraction of random pixels, as if they had been impulses.
"""

from __future__ import annotations

from typing import Any, Literal

import albumentations as A
import numpy as np

from pipeline.denoise.estimate import NoiseEstimate
from pipeline.denoise.repair import fill_impulses, repair
from pipeline.core.sections import DenoiseConfig


class DeGaussian(A.ImageOnlyTransform):
    """The denoise stage's Gaussian repair (NLM or bilateral) at a sigma drawn from ``sigma``."""

    def __init__(self, sigma: tuple[float, float], method: Literal["nlmeans", "bilateral"] = "nlmeans", p: float = 0.5):
        super().__init__(p=p)
        self.sigma = sigma
        self.method = method
        self.denoise = DenoiseConfig(gaussian_method=method)

    def get_params(self) -> dict[str, Any]:
        return {"noise_sigma": self.py_random.uniform(*self.sigma)}

    def apply(self, img: np.ndarray, noise_sigma: float, **params: Any) -> np.ndarray:
        return repair(img, NoiseEstimate("gaussian", noise_sigma, 0.0), self.denoise)[0]

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("sigma", "method")


class DePepper(A.ImageOnlyTransform):
    """The denoise stage's switching median on a random ``density`` fraction of the pixels."""

    def __init__(self, density: tuple[float, float], p: float = 0.5):
        super().__init__(p=p)
        self.density = density
        self.ksize = DenoiseConfig().median_ksize

    def get_params(self) -> dict[str, Any]:
        return {"fraction": self.py_random.uniform(*self.density), "mask_seed": self.py_random.randrange(2**32)}

    def apply(self, img: np.ndarray, fraction: float, mask_seed: int, **params: Any) -> np.ndarray:
        mask = np.random.default_rng(mask_seed).random(img.shape[:2]) < fraction
        return fill_impulses(img, mask, self.ksize)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("density",)
