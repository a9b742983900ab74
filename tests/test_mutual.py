"""Mutual learning: the KL and metric mutual terms against known answers, the pair's config
errors, and a tiny two-model run that resumes exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError
from pipeline.losses.mutual import batch_distances, mutual_kl, mutual_metric
from pipeline.models import ModelConfig
from pipeline.train import load_trained_model
from pipeline.core.sections import MutualConfig, split_pair
from pipeline.train.mutual import fit_mutual
from tests.test_train_loop import Killed, assert_same, tiny_data, tiny_recipe


def test_kl_is_zero_for_identical_logits_and_matches_the_definition_otherwise():
    logits = torch.randn(5, 7)
    assert float(mutual_kl(logits, logits.clone())) == pytest.approx(0.0, abs=1e-6)
    a = torch.randn(5, 7, requires_grad=True)
    b = torch.randn(5, 7, requires_grad=True)
    pa, pb = a.softmax(1), b.softmax(1)
    expected = ((pb * (pb.log() - pa.log())).sum(1) + (pa * (pa.log() - pb.log())).sum(1)).mean()
    got = mutual_kl(a, b)
    assert float(got.detach()) > 0
    torch.testing.assert_close(got, expected)
    got.backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_kl_targets_are_detached():
    a = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, 3)
    # d/da of KL(p_b || p_a) alone (b's direction contributes nothing to a: its target is detached)
    mutual_kl(a, b).backward()
    expected = (a.softmax(1) - b.softmax(1)) / 4
    torch.testing.assert_close(a.grad, expected)


def test_metric_mutual_loss_compares_batch_distance_matrices():
    x = torch.randn(6, 5)
    assert float(mutual_metric(x, 3.0 * x)) == pytest.approx(0.0, abs=1e-6)  # scale-free: normalised
    a, b = torch.randn(6, 5, requires_grad=True), torch.randn(6, 8, requires_grad=True)  # any widths
    got = mutual_metric(a, b)
    expected = 2 * ((batch_distances(a) - batch_distances(b)) ** 2).mean()
    torch.testing.assert_close(got, expected)
    got.backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    torch.testing.assert_close(batch_distances(a), torch.cdist(*(torch.nn.functional.normalize(a, dim=1),) * 2), atol=1e-3, rtol=0)


@pytest.mark.parametrize("pair", ["lite0", "lite0+lite0", "a+b+c", "+b"])
def test_a_pair_of_fewer_than_two_models_is_an_error_naming_the_key(pair):
    with pytest.raises(ConfigError, match="mutual.pairs"):
        split_pair(pair)
    with pytest.raises(ConfigError, match="mutual.pairs"):
        from_mapping(MutualConfig, {"pairs": [pair]}, "params.yaml", "mutual")


def test_recipes_whose_batches_differ_cannot_learn_together(tmp_path):
    with pytest.raises(ConfigError, match="train.p differs"):
        fit_mutual(tiny_recipe(), tiny_recipe(p=3), tiny_data(), tmp_path, pair="a+b", fold=0, cfg=MutualConfig(pairs=["a+b"]))


def partner_recipe():
    recipe = tiny_recipe()
    return dataclasses.replace(recipe, model=ModelConfig(backbone="test_resnet"))


def test_tiny_pair_trains_both_models_and_resumes_exactly(tmp_path):
    cfg = MutualConfig(pairs=["a+b"], kl_weight=1.0, metric_weight=1.0)
    args = dict(pair="a+b", fold=0, cfg=cfg)
    fit_mutual(tiny_recipe(), partner_recipe(), tiny_data(), tmp_path / "whole", **args)

    def kill_after_first_epoch(epoch: int, metrics: dict[str, float]) -> None:
        assert metrics["train/mutual_kl"] > 0 and metrics["train/mutual_metric"] > 0
        if epoch == 0:
            raise Killed

    with pytest.raises(Killed):
        fit_mutual(tiny_recipe(), partner_recipe(), tiny_data(), tmp_path / "killed", on_epoch_end=kill_after_first_epoch, **args)
    summary = fit_mutual(tiny_recipe(), partner_recipe(), tiny_data(), tmp_path / "killed", **args)
    assert summary["step"] == 2.0 and "a/val/score" in summary and "b/val/score" in summary

    def last(root):
        state = torch.load(root / "joint" / "fold0" / "checkpoints" / "last.pt", weights_only=True)
        return {**{f"a.{k}": v for k, v in state["model"].items()},
                **{f"b.{k}": v for k, v in state["partner"]["model"].items()}}

    assert_same(last(tmp_path / "whole"), last(tmp_path / "killed"))
    for name, backbone in (("a", "test_efficientnet"), ("b", "test_resnet")):
        model, meta = load_trained_model(tmp_path / "killed" / name / "fold0" / "checkpoints" / "best.pt")
        assert meta["model_name"] == name and meta["backbone"] == backbone == model.config.backbone


def test_the_stage_refuses_a_one_model_pair_naming_the_key(tmp_path):
    import runpy

    params = tmp_path / "params.yaml"
    params.write_text("train: {models: [lite0], folds: [0]}\nmutual: {pairs: [lite0]}\n")
    stage = runpy.run_path(str(Path(__file__).resolve().parents[1] / "stages" / "mutual.py"))
    with pytest.raises(ConfigError, match="mutual.pairs: 'lite0' must name two different models"):
        stage["main"](["--pair", "lite0", "--params", str(params)])
