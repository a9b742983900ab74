"""DeGaussian / DePepper (the denoiser's own repairs) and timm's AutoAugment / RandAugment in training."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.core.config import from_mapping
from pipeline.denoise.estimate import NoiseEstimate
from pipeline.denoise.repair import repair
from pipeline.core.sections import DenoiseConfig
from pipeline.data.policy_augment import TimmPolicy
from pipeline.data.repair_augment import DeGaussian, DePepper
from pipeline.data.transforms import AugmentConfig, SeededAugment, build_train_transforms
from pipeline.core.errors import ConfigError

OFF = dict(hflip_p=0.0, erasing_p=0.0)


def image(seed: int = 0, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("method", ["nlmeans", "bilateral"])
def test_degaussian_is_the_denoise_stage_repair_at_the_drawn_sigma(method):
    transform = SeededAugment([DeGaussian((12.0, 12.0), method, p=1.0)])
    expected, _ = repair(image(), NoiseEstimate("gaussian", 12.0, 0.0), DenoiseConfig(gaussian_method=method))
    np.testing.assert_array_equal(transform(image(), 5), expected)
    assert not np.array_equal(expected, image())


def test_depepper_median_fills_about_the_drawn_fraction_of_pixels():
    transform = SeededAugment([DePepper((0.05, 0.05), p=1.0)])
    original = image(size=64)
    out = transform(original, 7)
    changed = np.any(out != original, axis=2).mean()
    # 4096 pixels at 5 %: sd 0.34 %; a median of random neighbours almost never equals the pixel
    assert 0.035 < changed <= 0.065
    np.testing.assert_array_equal(transform(original, 7), out)  # the sample's seed fixes it


def test_repairs_run_before_the_resize_and_are_off_by_default():
    assert not any(isinstance(t, (DeGaussian, DePepper, TimmPolicy)) for t in build_train_transforms(AugmentConfig(), 16))
    config = AugmentConfig(degaussian_p=0.5, depepper_p=0.5, auto_augment="rand-m9-n2", **OFF)
    kinds = [type(t).__name__ for t in build_train_transforms(config, 16)]
    assert kinds == ["DeGaussian", "DePepper", "Resize", "TimmPolicy"]


def test_timm_policy_is_reproducible_and_leaves_global_randomness_alone():
    config = AugmentConfig(auto_augment="rand-m9-mstd0.5", **OFF)
    augment = SeededAugment(build_train_transforms(config, 32))
    random.seed(1)
    np.random.seed(1)
    outputs = [augment(image(s), s) for s in range(8)]
    assert (random.random(), np.random.random()) == (random.Random(1).random(), np.random.RandomState(1).random_sample())
    for s, out in enumerate(outputs):
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(augment(image(s), s), out)
    assert sum(not np.array_equal(out, image(s)) for s, out in enumerate(outputs)) >= 6


@pytest.mark.parametrize("policy", ["original", "v0", "augmix-m5-w4-d2"])
def test_timm_autoaugment_policies_change_images_reproducibly(policy):
    """Each policy alters most images (an identity transform would alter none), the same way
    for the same sample seed."""
    augment = SeededAugment(build_train_transforms(AugmentConfig(auto_augment=policy, **OFF), 32))
    outputs = [augment(image(s), s) for s in range(8)]
    for s, out in enumerate(outputs):
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(augment(image(s), s), out)
    assert sum(not np.array_equal(out, image(s)) for s, out in enumerate(outputs)) >= 5


def test_bad_settings_name_their_key():
    with pytest.raises(ConfigError, match="auto_augment"):
        build_train_transforms(AugmentConfig(auto_augment="nonsense-policy"), 16)
    with pytest.raises(ConfigError, match="depepper_density"):
        from_mapping(AugmentConfig, {"depepper_density": [0.2, 0.1]}, "recipe.yaml", "augment")
    with pytest.raises(ConfigError, match="degaussian_method"):
        from_mapping(AugmentConfig, {"degaussian_method": "wiener"}, "recipe.yaml", "augment")
