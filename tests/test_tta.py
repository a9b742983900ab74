import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError
from pipeline.infer.tta import average_fold_features, embed_with_tta, extract_features, stack_views
from pipeline.core.sections import TTAConfig


class PixelProbe(torch.nn.Module):
    """Embeds an image as its pixel values at a few fixed positions: sensitive to every view."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        small = F.adaptive_avg_pool2d(images, 4)
        return small.flatten(1) + self.weight


def test_stack_views_matches_explicit_rotations_and_flips():
    batch = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    views = stack_views(batch, rotations=(0, 90, 270), flip=True)
    expected = [batch, torch.rot90(batch, 1, (2, 3)), torch.rot90(batch, 3, (2, 3))]
    expected += [torch.flip(v, (3,)) for v in expected]
    assert torch.equal(views, torch.cat(expected))


def test_embed_with_tta_equals_brute_force_sum_over_views():
    torch.manual_seed(0)
    model = PixelProbe()
    batch = torch.randn(3, 3, 16, 16)
    cfg = TTAConfig(scales=(1.0, 1.5), rotations=(0, 90, 180, 270), flip=True)
    total = torch.zeros(3, 48)
    for scale in cfg.scales:
        side = round(16 * scale)
        for image_index in range(3):
            image = batch[image_index : image_index + 1]
            if side != 16:
                image = F.interpolate(image, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
            for r in cfg.rotations:
                rotated = torch.rot90(image, r // 90, (2, 3))
                for view in (rotated, torch.flip(rotated, (3,))):
                    total[image_index] += model.embed(view)[0]
    expected = F.normalize(total, dim=1)
    got = embed_with_tta(model, batch, input_size=16, cfg=cfg)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert cfg.views_per_image == 16


def test_rotation_invariant_model_gives_the_single_view_feature():
    class MeanColour(PixelProbe):
        def embed(self, images):
            return images.mean(dim=(2, 3)) + self.weight

    model = MeanColour()
    batch = torch.rand(4, 3, 8, 8) + 0.1
    plain = embed_with_tta(model, batch, 8, TTAConfig(rotations=(0,), flip=False))
    tta = embed_with_tta(model, batch, 8, TTAConfig(rotations=(0, 90, 180, 270), flip=True))
    torch.testing.assert_close(plain, tta)


def test_extract_features_is_independent_of_batch_size():
    torch.manual_seed(0)
    images = np.random.default_rng(0).integers(0, 256, size=(7, 12, 12, 3), dtype=np.uint8)
    common = dict(input_size=12, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    small = extract_features(PixelProbe(), images, cfg=TTAConfig(batch_size=2), **common)
    large = extract_features(PixelProbe(), images, cfg=TTAConfig(batch_size=64), **common)
    assert small.shape == (7, 48) and small.dtype == np.float32
    np.testing.assert_allclose(small, large, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(small, axis=1), 1.0, atol=1e-5)


def test_extracting_from_the_read_only_cache_memmap_raises_no_warning(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(3, 12, 12, 3), dtype=np.uint8)
    np.save(tmp_path / "query.npy", images)
    cache = np.load(tmp_path / "query.npy", mmap_mode="r")
    common = dict(input_size=12, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), cfg=TTAConfig())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_cache = extract_features(PixelProbe(), cache, **common)
    np.testing.assert_array_equal(from_cache, extract_features(PixelProbe(), images, **common))


def test_average_fold_features_hand_case():
    a = np.array([[1.0, 0.0]], dtype=np.float32)
    b = np.array([[0.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(average_fold_features([a, b]), [[2**-0.5, 2**-0.5]], atol=1e-6)


@pytest.mark.parametrize(
    "data, message",
    [({"rotations": [45]}, "multiples of 90"), ({"scales": []}, "scales"), ({"rotations": [0, 360]}, "repeat")],
)
def test_bad_tta_config(data, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(TTAConfig, data, "params.yaml", "extract")


def test_non_square_input_scales_each_side_and_refuses_quarter_turns():
    model = PixelProbe()
    batch = torch.randn(2, 3, 16, 8)
    cfg = TTAConfig(scales=(1.5,), rotations=(0, 180), flip=True)
    tall = F.interpolate(batch, size=(24, 12), mode="bilinear", align_corners=False, antialias=True)
    views = [tall, torch.rot90(tall, 2, (2, 3))]
    views += [torch.flip(v, (3,)) for v in views]
    expected = F.normalize(sum(model.embed(v) for v in views), dim=1)
    torch.testing.assert_close(embed_with_tta(model, batch, (16, 8), cfg), expected, atol=1e-5, rtol=1e-5)

    images = np.zeros((2, 16, 8, 3), np.uint8)
    common = dict(input_size=[16, 8], mean=(0.5,) * 3, std=(0.5,) * 3)
    assert extract_features(model, images, cfg=cfg, **common).shape == (2, 48)
    with pytest.raises(ConfigError, match=r"extract\.rotations \[0, 90\]: quarter turns need a square input.*16x8"):
        extract_features(model, images, cfg=TTAConfig(rotations=(0, 90)), **common)
