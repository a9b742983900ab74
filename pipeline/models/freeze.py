"""Freeze the stem and the first stages of any timm backbone, and unfreeze it later.

Stages come from timm itself: ``model.group_matcher(coarse=True)`` (the grouping timm uses
for layer-wise learning-rate decay) read through ``timm.models.group_parameters``. Group 0
is the stem, group k the k-th stage; a trailing group holds what follows the last stage
(final norm / head conv), so no per-family list of layer names is needed here.

A BatchNorm whose affine parameters are frozen is kept in eval mode, so its running
statistics stay those of the pretrained weights. The rule is stateless (derived from
``requires_grad``), so ``ReIDModel.train()`` re-applies it after every mode switch and
``unfreeze`` undoes it without any bookkeeping.
"""

from __future__ import annotations

from torch import nn

from pipeline.core.compat import import_timm
from pipeline.core.errors import ConfigError


def stage_parameter_names(backbone: nn.Module) -> list[list[str]]:
    """Parameter names per timm coarse group: [stem, stage 1, ..., trailing layers]."""
    matcher = getattr(backbone, "group_matcher", None)
    if matcher is None:
        raise ConfigError(
            f"{type(backbone).__name__} has no timm group_matcher, so its stages are unknown; "
            "use frozen_stages: 0 with this backbone"
        )
    groups = import_timm().models.group_parameters(backbone, matcher(coarse=True))
    return [groups[k] for k in sorted(groups)]


def freeze_stages(backbone: nn.Module, n: int) -> None:
    """Freeze the stem plus the first ``n`` stages (n = 0 freezes nothing)."""
    if n < 0:
        raise ValueError(f"frozen stages must be >= 0, got {n}")
    if n == 0:
        return
    groups = stage_parameter_names(backbone)
    if n > len(groups) - 1:
        raise ConfigError(
            f"frozen_stages={n} but {type(backbone).__name__} has {len(groups) - 1} stages "
            "after its stem in timm's grouping"
        )
    frozen = {name for group in groups[: n + 1] for name in group}
    for name, parameter in backbone.named_parameters():
        if name in frozen:
            parameter.requires_grad_(False)
    set_frozen_batchnorm_eval(backbone)


def set_frozen_batchnorm_eval(module: nn.Module) -> None:
    """Put every BatchNorm whose weight is frozen in eval mode (running stats stop moving)."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.affine and not layer.weight.requires_grad:
            layer.eval()


def unfreeze(model: nn.Module) -> None:
    """Make the backbone trainable again and return its BatchNorms to ``model``'s mode.

    Takes a ``ReIDModel`` (only its backbone is unfrozen: the BNNeck bias stays frozen by
    design) or a bare backbone. Frozen parameters stayed in the optimiser's groups (see
    ``ReIDModel.parameter_groups``), so the optimiser need not be rebuilt.
    """
    backbone = model.backbone if isinstance(getattr(model, "backbone", None), nn.Module) else model
    for parameter in backbone.parameters():
        parameter.requires_grad_(True)
    model.train(model.training)
