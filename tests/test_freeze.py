import pytest
import torch
from torch import nn

from pipeline.core.errors import ConfigError
from pipeline.losses import LossConfig, ReIDCriterion
from pipeline.models import ModelConfig, create_model, freeze_stages, unfreeze
from pipeline.models.freeze import stage_parameter_names

LABELS = torch.tensor([0, 0, 1, 1])


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and every BatchNorm running statistic, by name."""
    state = {name: p.detach().clone() for name, p in module.named_parameters()}
    for name, layer in module.named_modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            state[f"{name}.running_mean"] = layer.running_mean.clone()
            state[f"{name}.running_var"] = layer.running_var.clone()
    return state


def _train_steps(model, steps: int = 2) -> None:
    criterion = ReIDCriterion(LossConfig(), model.num_classes, model.feature_dim)
    params = [p for group in model.parameter_groups().values() for p in group]
    optimizer = torch.optim.SGD(params, lr=0.1)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for iteration in range(steps):
        images = torch.randn(4, 3, 32, 32, generator=generator)
        loss, _ = criterion(model(images, LABELS), LABELS, iteration)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _changed(before: dict, after: dict, name: str) -> bool:
    return not torch.equal(before[name], after[name])


@pytest.mark.parametrize("backbone", ["test_efficientnet", "test_resnet"])
def test_frozen_stages_and_their_batchnorm_stats_do_not_move(backbone):
    n = 2
    model = create_model(ModelConfig(backbone, frozen_stages=n, pooling="avg"), num_classes=2)
    groups = stage_parameter_names(model.backbone)
    frozen_params = {name for group in groups[: n + 1] for name in group}
    frozen_bn = {
        name
        for name, layer in model.backbone.named_modules()
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and f"{name}.weight" in frozen_params
    }
    assert frozen_bn and len(frozen_params) < len(list(model.backbone.parameters()))
    before = _snapshot(model.backbone)
    _train_steps(model)
    after = _snapshot(model.backbone)
    for name, parameter in model.backbone.named_parameters():
        assert parameter.requires_grad == (name not in frozen_params)
        assert _changed(before, after, name) == (name not in frozen_params), name
    for name, layer in model.backbone.named_modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            assert layer.training == (name not in frozen_bn), name  # survived model.train()
            assert _changed(before, after, f"{name}.running_mean") == (name not in frozen_bn), name
            assert _changed(before, after, f"{name}.running_var") == (name not in frozen_bn), name


def test_unfreeze_trains_everything_again_without_a_new_optimiser():
    model = create_model(ModelConfig("test_resnet", frozen_stages=4), num_classes=2)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    unfreeze(model)
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert not model.neck.bn.bias.requires_grad  # the BNNeck bias stays frozen
    before = _snapshot(model.backbone)
    _train_steps(model)  # two steps: a zero-initialised last BN of a residual branch
    # blocks the gradient of the layers before it for one step
    after = _snapshot(model.backbone)
    assert all(_changed(before, after, name) for name in before)
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("backbone", ["densenet121", "efficientnet_b0", "resnest14d"])
def test_real_families_freeze_by_timm_groups_and_keep_frozen_bn_in_eval(backbone):
    # no forward pass: these are slow on CPU; the training behaviour is covered above
    n = 2
    model = create_model(ModelConfig(backbone, frozen_stages=n), num_classes=2).train()
    groups = stage_parameter_names(model.backbone)
    frozen = {name for group in groups[: n + 1] for name in group}
    for name, parameter in model.backbone.named_parameters():
        assert parameter.requires_grad == (name not in frozen), name
    for name, layer in model.backbone.named_modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            assert layer.training == (f"{name}.weight" not in frozen), name


def test_freezing_works_on_norms_without_running_stats():
    model = create_model(ModelConfig("test_vit", frozen_stages=1), num_classes=2)
    groups = stage_parameter_names(model.backbone)
    assert "cls_token" in groups[0] and "pos_embed" in groups[0]  # root parameters belong to the stem
    frozen = {name for name, p in model.backbone.named_parameters() if not p.requires_grad}
    assert frozen == set(groups[0]) | set(groups[1])


def test_zero_freezes_nothing_and_too_many_stages_is_an_error():
    model = create_model(ModelConfig("test_resnet"), num_classes=2)
    freeze_stages(model.backbone, 0)
    assert all(p.requires_grad for p in model.backbone.parameters())
    with pytest.raises(ConfigError, match="has 4 stages"):
        freeze_stages(model.backbone, 5)
