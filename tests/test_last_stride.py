"""Last stride 1: the final feature map doubles, weights are untouched, and no stage is refused silently."""

from __future__ import annotations

import pytest
import torch

from pipeline.core.compat import import_timm
from pipeline.core.errors import ConfigError
from pipeline.models import ModelConfig, create_model
from pipeline.models.last_stride import set_last_stride_one
from pipeline.models.pretrained import load_package_weights


def feature_map_shape(model: torch.nn.Module, side: int = 64) -> tuple[int, int]:
    with torch.no_grad():
        return tuple(model.eval().forward_features(torch.zeros(1, 3, side, side)).shape[-2:])


@pytest.mark.parametrize("name", ["resnet18", "resnest14d", "efficientnet_lite0", "densenet121"])
def test_the_final_feature_map_doubles(name):
    timm = import_timm()
    model = timm.create_model(name, num_classes=0)
    before = feature_map_shape(model)
    set_last_stride_one(model, name)
    assert feature_map_shape(model) == (2 * before[0], 2 * before[1])  # 64 px: 2 x 2 -> 4 x 4


def test_a_resnet_changes_only_its_last_stage():
    model = import_timm().create_model("resnet18", num_classes=0)
    changed = set_last_stride_one(model, "resnet18")
    assert changed == ["layer4.0.conv1", "layer4.0.downsample.0"]  # the block's 3x3 and its shortcut


def test_package_weights_still_load_and_are_unchanged():
    plain = import_timm().create_model("efficientnet_lite0", num_classes=0)
    load_package_weights(plain, "efficientnet_lite0")
    model = create_model(ModelConfig("efficientnet_lite0", pretrained="package", last_stride_1=True), num_classes=3)
    own = model.backbone.state_dict()
    assert own.keys() == plain.state_dict().keys()
    assert all(torch.equal(own[k], v) for k, v in plain.state_dict().items())
    assert feature_map_shape(model.backbone) == (4, 4)
    assert model(torch.zeros(2, 3, 64, 64)).embeddings.shape == (2, 1280)


def test_backbones_without_a_usable_stride_are_refused():
    timm = import_timm()
    with pytest.raises(ConfigError, match="no downsampling stage"):
        set_last_stride_one(timm.create_model("vit_tiny_patch16_224", num_classes=0), "vit_tiny_patch16_224")
    with pytest.raises(ConfigError, match="no stride-1 form"):
        set_last_stride_one(timm.create_model("convnext_atto", num_classes=0), "convnext_atto")
