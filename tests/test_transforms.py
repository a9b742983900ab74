"""Training augmentation: shapes, seeding, the p=0 identity, erasing geometry, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.config import from_mapping
from pipeline.data.torch_data import normalize_batch
from pipeline.data.transforms import AugmentConfig, SeededAugment, build_train_transforms
from pipeline.core.errors import ConfigError

OFF = dict(hflip_p=0.0, erasing_p=0.0)  # the two transforms on by default
ALL_ON = AugmentConfig(
    hflip_p=0.5, vflip_p=0.5, affine_p=0.5, perspective_p=0.5, rotate90_p=0.5,
    channel_shuffle_p=0.5, color_jitter_p=0.5, erasing_p=0.5, random_patch_p=0.5,
)


def image(seed: int = 0, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_every_transform_keeps_uint8_rgb_at_the_input_size():
    augment = SeededAugment(build_train_transforms(ALL_ON, 16))
    assert len(augment.transforms) == 10  # resize + the nine enabled transforms
    for seed in range(20):
        out = augment(image(seed), seed)
        assert out.shape == (16, 16, 3) and out.dtype == np.uint8


def test_probability_zero_leaves_the_image_unchanged():
    config = AugmentConfig(**OFF)
    augment = SeededAugment(build_train_transforms(config, 24))
    original = image()
    np.testing.assert_array_equal(augment(original, 3), original)


def test_same_seed_same_result_and_other_seeds_differ():
    augment = SeededAugment(build_train_transforms(ALL_ON, 24))
    original = image()
    first = augment(original, 11)
    augment.reset()
    np.testing.assert_array_equal(augment(original, 11), first)
    assert any(not np.array_equal(augment(original, s), first) for s in range(12, 16))


def test_children_are_seeded_independently():
    # with one shared seed, flip and channel shuffle (both p=0.5) would always fire together
    config = AugmentConfig(hflip_p=0.5, channel_shuffle_p=0.5, erasing_p=0.0)
    augment = SeededAugment(build_train_transforms(config, 8))
    base = np.zeros((8, 8, 3), np.uint8)
    base[:, :4, 0] = 200  # left half red: a flip moves it, a shuffle moves it to another channel
    flipped, shuffled = [], []
    for seed in range(200):
        out = augment(base, seed)
        flipped.append(bool(out[:, 4:].any()))
        shuffled.append(not out[..., 0].any())  # red left channel 0 (5 of 6 permutations)
    flipped, shuffled = np.array(flipped), np.array(shuffled)
    assert 0.35 < flipped.mean() < 0.65
    assert (shuffled & ~flipped).mean() > 0.1 and (flipped & ~shuffled).mean() > 0.1


def test_random_erasing_covers_the_configured_area_with_the_fill():
    config = AugmentConfig(hflip_p=0.0, erasing_p=1.0, erasing_fill=(1.0, 2.0, 3.0))
    augment = SeededAugment(build_train_transforms(config, 40))
    original = np.full((40, 40, 3), 255, np.uint8)
    for seed in range(30):
        out = augment(original, seed)
        erased = (out == (1, 2, 3)).all(axis=2)
        rows, cols = np.flatnonzero(erased.any(1)), np.flatnonzero(erased.any(0))
        assert erased.sum() == len(rows) * len(cols)  # one rectangle
        assert 0.02 * 1600 - 40 <= erased.sum() <= 0.4 * 1600 + 40  # rounding of the sides
        aspect = len(cols) / len(rows)
        assert 0.3 * 0.7 <= aspect <= 3.33 / 0.7


def test_channel_shuffle_permutes_channels():
    config = AugmentConfig(**OFF, channel_shuffle_p=1.0)
    augment = SeededAugment(build_train_transforms(config, 24))
    original = image()
    outs = [augment(original, s) for s in range(10)]
    for out in outs:
        channels = sorted(out[..., c].tobytes() for c in range(3))
        assert channels == sorted(original[..., c].tobytes() for c in range(3))
    assert any(not np.array_equal(out, original) for out in outs)


def test_random_patch_pastes_from_earlier_images_and_reset_empties_the_pool():
    config = AugmentConfig(**OFF, random_patch_p=1.0)
    augment = SeededAugment(build_train_transforms(config, 20))
    black, white = np.zeros((20, 20, 3), np.uint8), np.full((20, 20, 3), 255, np.uint8)
    np.testing.assert_array_equal(augment(black, 1), black)  # empty pool: nothing to paste
    patched = augment(white, 2)
    assert (patched == 0).any() and (patched == 255).any()  # a black patch from the first image
    augment.reset()
    np.testing.assert_array_equal(augment(white, 2), white)


def test_normalize_batch_matches_hand_computation():
    batch = torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8)  # (1, 1, 1, 3)
    out = normalize_batch(batch, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    assert out.shape == (1, 3, 1, 1) and out.dtype == torch.float32
    expected = [(0 / 255 - 0.5) / 0.25, (128 / 255 - 0.5) / 0.5, (255 / 255 - 0.5) / 1.0]
    torch.testing.assert_close(out.flatten(), torch.tensor(expected))
    with pytest.raises(ValueError, match="uint8"):
        normalize_batch(batch.float(), (0, 0, 0), (1, 1, 1))


def test_config_rejects_bad_probabilities_and_unknown_keys():
    with pytest.raises(ConfigError, match="erasing_p"):
        from_mapping(AugmentConfig, {"erasing_p": 1.5}, "recipe.yaml", "augment")
    with pytest.raises(ConfigError, match="augment.flip_p"):
        from_mapping(AugmentConfig, {"flip_p": 0.5}, "recipe.yaml", "augment")
