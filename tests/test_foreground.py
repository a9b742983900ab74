"""Background suppression: the activation mask finds a known bright region, masked pooling
equals pooling that region by hand, and the extraction path uses it only when asked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError
from pipeline.evaluate.sheets import dim_outside
from pipeline.infer.extract import foreground_masks
from pipeline.infer.foreground import activation_mask, embed_foreground
from pipeline.infer.store import FeatureSet, ModelFeatures, load_features, save_features
from pipeline.infer.tta import extract_features
from pipeline.core.sections import ExtractConfig, TTAConfig
from pipeline.models import ModelConfig, create_model
from pipeline.models.pooling import GeM, create_pooling

DTYPES = [torch.float32, torch.float64]
REGION = (slice(1, 4), slice(2, 5))  # rows 1-3, columns 2-4 of a 6 x 7 map


def _map_with_bright_region(dtype: torch.dtype) -> torch.Tensor:
    """(2, 5, 6, 7) positive noise below 0.1, plus 1-2 on every channel inside REGION."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 5, 6, 7, generator=generator, dtype=dtype) * 0.1
    x[:, :, REGION[0], REGION[1]] += 1.0 + torch.rand(2, 5, 3, 3, generator=generator, dtype=dtype)
    return x


@pytest.mark.parametrize("dtype", DTYPES)
def test_mask_is_the_bright_region(dtype):
    mask = activation_mask(_map_with_bright_region(dtype), threshold=0.3)
    expected = torch.zeros(2, 6, 7, dtype=torch.bool)
    expected[:, REGION[0], REGION[1]] = True
    assert torch.equal(mask, expected)


def test_threshold_ends_keep_everything_or_the_peak():
    x = _map_with_bright_region(torch.float64)
    assert activation_mask(x, 0.0).all()
    peak = activation_mask(x, 1.0)
    assert peak.sum(dim=(1, 2)).tolist() == [1, 1]
    summed = x.sum(dim=1).flatten(1)
    assert peak.flatten(1).float().argmax(dim=1).tolist() == summed.argmax(dim=1).tolist()
    flat = torch.ones(1, 3, 4, 4)  # no contrast at all: nothing to suppress, nothing empty
    assert activation_mask(flat, 0.5).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pooling", ["gem", "avg", "max"])
def test_masked_pooling_equals_pooling_the_region_by_hand(dtype, pooling):
    x = _map_with_bright_region(dtype)
    x[:, :, 0, 0] = 50.0  # a strong response outside the mask must not leak in
    mask = torch.zeros(2, 6, 7, dtype=torch.bool)
    mask[:, REGION[0], REGION[1]] = True
    region = x[:, :, REGION[0], REGION[1]].double().numpy()
    expected = {
        "gem": np.mean(region**3, axis=(2, 3)) ** (1 / 3),
        "avg": region.mean(axis=(2, 3)),
        "max": region.max(axis=(2, 3)),
    }[pooling]
    layer = GeM(p=3.0) if pooling == "gem" else create_pooling(pooling)
    got = layer(x, mask).double().detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    everywhere = torch.ones_like(mask)
    np.testing.assert_allclose(layer(x, everywhere).detach().numpy(), layer(x).detach().numpy(), rtol=1e-5)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model(ModelConfig(backbone="test_efficientnet"), num_classes=4).eval()


def test_embedding_of_the_masked_region(model):
    images = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(embed_foreground(model, images, 0.0), model.embed(images))
        feature_map = model.feature_map(images)
        mask = activation_mask(feature_map, 0.6)
        assert 0 < int(mask.sum()) < mask.numel()  # a real partial mask on this input
        by_hand = model.embed_pooled(model.pooling(feature_map, mask))
        torch.testing.assert_close(embed_foreground(model, images, 0.6), by_hand)
        assert not torch.allclose(by_hand, model.embed(images))


def test_extraction_suppresses_only_when_asked(model):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 64, 64, 3), dtype=np.uint8)
    common = dict(input_size=64, mean=(0.5,) * 3, std=(0.5,) * 3)
    plain = extract_features(model, images, cfg=TTAConfig(flip=False), **common)
    off = extract_features(model, images, cfg=TTAConfig(flip=False, suppress_threshold=0.9), **common)
    on = extract_features(model, images, cfg=TTAConfig(flip=False, suppress_background=True, suppress_threshold=0.6), **common)
    np.testing.assert_array_equal(plain, off)
    assert np.abs(plain - on).max() > 1e-3
    masks = foreground_masks(model, images, 64, (0.5,) * 3, (0.5,) * 3, 0.6)
    assert masks.dtype == bool and masks.shape[0] == 5 and masks.any(axis=(1, 2)).all()


def test_threshold_is_validated():
    with pytest.raises(ConfigError, match="suppress_threshold"):
        from_mapping(ExtractConfig, {"suppress_threshold": 1.5}, "params.yaml", "extract")
    with pytest.raises(ConfigError, match="extract.suppress_background"):
        from_mapping(ExtractConfig, {"suppress_background": "yes"}, "params.yaml", "extract")
    with pytest.raises(ConfigError, match="suppress_background needs engine torch"):
        from_mapping(ExtractConfig, {"suppress_background": True, "engine": "onnx"}, "params.yaml", "extract")


def test_masks_are_stored_with_the_features_and_drawn(tmp_path):
    masks = np.zeros((2, 3, 3), dtype=bool)
    masks[:, 1, 1] = True
    one = FeatureSet(np.eye(2, 4, dtype=np.float32), ["a", "b"])
    save_features(tmp_path / "m", ModelFeatures(one, one, foreground=masks))
    np.testing.assert_array_equal(load_features(tmp_path / "m").foreground, masks)
    save_features(tmp_path / "plain", ModelFeatures(one, one))
    assert load_features(tmp_path / "plain").foreground is None
    image = np.full((6, 6, 3), 200, dtype=np.uint8)
    dimmed = dim_outside(image, masks[0])
    assert (dimmed[2:4, 2:4] == 200).all() and (dimmed[:2] == 50).all() and (dimmed[:, 4:] == 50).all()


def test_report_picture_is_written(tmp_path):
    from pipeline.chain.score_table import draw_foreground

    images = np.random.default_rng(0).integers(0, 256, size=(3, 12, 12, 3), dtype=np.uint8)
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[:, 1:3, 1:3] = True
    draw_foreground(tmp_path / "foreground_m.png", "m", images, masks)
    assert (tmp_path / "foreground_m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
