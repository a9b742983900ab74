"""Last stride 1 (Luo et al. 2019, "Bag of tricks and a strong baseline for person re-id"):
the backbone's last downsampling stage runs at stride 1, so its final feature map has twice
the height and width (a ResNet-50 at 256 x 128: 16 x 8 instead of 8 x 4) at no parameter cost.

The stage is found through timm's ``feature_info`` (the last entry whose reduction grows),
not through per-family lists: every module registered after the previous feature point and
up to the last one belongs to it, and each strided convolution or pooling there is set to
stride 1. Weights are untouched, so pretrained weights load the same before or after.
"""

from __future__ import annotations

from torch import nn

from pipeline.core.errors import ConfigError


_POOLS = (nn.AvgPool2d, nn.MaxPool2d)


def _pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _last_stage_modules(backbone: nn.Module, name: str) -> list[tuple[str, nn.Module]]:
    """The modules between the last two feature points whose reductions differ."""
    info = getattr(backbone, "feature_info", None)
    points = [(entry["module"], entry["reduction"]) for entry in info or []]
    grows = [i for i in range(1, len(points)) if points[i][1] > points[i - 1][1]]
    if not grows:
        raise ConfigError(
            f"last_stride_1: timm's feature_info of {name!r} shows no downsampling stage "
            f"(reductions {[r for _, r in points] or 'not given'})"
        )
    start, end = points[grows[-1] - 1][0], points[grows[-1]][0]
    names = [n for n, _ in backbone.named_modules()]
    # the span starts after the previous feature point's whole subtree
    first = max(i for i, n in enumerate(names) if n == start or n.startswith(start + ".")) + 1
    last = max(i for i, n in enumerate(names) if n == end or n.startswith(end + "."))
    modules = dict(backbone.named_modules())
    return [(n, modules[n]) for n in names[first : last + 1]]


def set_last_stride_one(backbone: nn.Module, name: str) -> list[str]:
    """Set the last downsampling stage of timm ``backbone`` to stride 1; returns the modules changed.

    A pooling whose window equals its stride (e.g. ResNeSt's average-pool shortcut) only
    downsamples, so it becomes a 1 x 1 window, as in the ResNeSt authors' own stride-1 code.
    A convolution whose kernel equals its stride (a patchify downsampler, e.g. ConvNeXt) cannot
    keep its weights at stride 1: that is an error rather than a silent shape change.
    """
    changed = []
    for module_name, module in _last_stage_modules(backbone, name):
        stride = getattr(module, "stride", None)
        if not isinstance(stride, (int, tuple)) or max(_pair(stride)) == 1:
            continue
        if next(module.children(), None) is not None:  # a block's stride is a record; its layers act
            continue
        if not isinstance(module, (nn.Conv2d, _POOLS)):  # e.g. a blur pool: its filter is not ours to redo
            raise ConfigError(
                f"last_stride_1: {name!r} downsamples in {module_name} ({type(module).__name__}), "
                "which is neither a convolution nor a pooling this option can set to stride 1"
            )
        kernel = _pair(module.kernel_size)
        if kernel == _pair(stride) and max(kernel) > 1:
            if isinstance(module, nn.Conv2d):
                raise ConfigError(
                    f"last_stride_1: {name!r} downsamples with a {kernel} convolution of stride {stride} "
                    f"({module_name}); it has no stride-1 form with the same weights"
                )
            module.kernel_size = 1 if isinstance(module.kernel_size, int) else (1, 1)
            module.padding = 0 if isinstance(module.padding, int) else (0, 0)
        module.stride = 1 if isinstance(stride, int) else (1, 1)
        changed.append(module_name)
    if not changed:
        raise ConfigError(f"last_stride_1: found no strided convolution or pooling in the last stage of {name!r}")
    return changed
