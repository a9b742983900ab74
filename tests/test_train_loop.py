"""The training loop on a tiny network and synthetic images: resume, determinism, AMP,
NaN skipping, frozen stages, checkpoints and recipes."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.errors import ConfigError
from pipeline.losses import LossConfig, ReIDCriterion
from pipeline.models import ModelConfig, create_model
from pipeline.train import load_recipe, load_trained_model
from pipeline.train import loop
from pipeline.train.data import FoldData
from pipeline.train.loop import fit, seed_everything
from pipeline.core.params import StageParams
from pipeline.train.recipe import Recipe, TrainConfig, stage_one_checkpoint
from pipeline.train.schedule import OptimConfig
from pipeline.core.sections import height_width
from pipeline.data.transforms import AugmentConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def tiny_data() -> FoldData:
    """10 training identities x 4 images + one single-image identity; 4 held-out x 4."""
    rng = np.random.default_rng(0)
    labels = [f"t{i}" for i in range(10) for _ in range(4)] + ["solo"] + [f"v{i}" for i in range(4) for _ in range(4)]
    labels = np.array(labels)
    base = rng.integers(0, 256, (15, 1, 1, 3))  # one colour per identity, plus noise
    ids = np.unique(labels, return_inverse=True)[1]
    images = np.clip(base[ids] + rng.normal(0, 40, (len(labels), 16, 16, 3)), 0, 255).astype(np.uint8)
    val = np.flatnonzero(np.char.startswith(labels, "v"))
    return FoldData(
        images=images, labels=labels, train_rows=np.arange(41),
        query_rows=val[::4], gallery_rows=np.setdiff1d(val, val[::4]),
    )


def tiny_recipe(**train) -> Recipe:
    return Recipe(
        model=ModelConfig(backbone="test_efficientnet", dropout=0.1),
        train=TrainConfig(**{"epochs": 2, "p": 4, "k": 4, "input_size": 16, "seed": 3, **train}),
        loss=LossConfig(triplet_weight=1.0, center_weight=0.0005),
        augment=AugmentConfig(hflip_p=0.5, erasing_p=0.5, color_jitter_p=0.5),
        optim=OptimConfig(optimizer="adamw", lr=1e-3, head_lr_multiplier=2.0, warmup_epochs=1, schedule="cosine"),
    )


def run(recipe: Recipe, out: Path, **kwargs) -> dict[str, float]:
    return fit(recipe, tiny_data(), out, model_name="tiny", fold=0, **kwargs)


def weights(out: Path) -> dict[str, torch.Tensor]:
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    return {**state["model"], **{f"criterion.{k}": v for k, v in state["trainer"]["criterion"].items()}}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:  # XBM's ring-buffer position is a plain dict (extra state)
        assert torch.equal(a[name], b[name]) if isinstance(a[name], torch.Tensor) else a[name] == b[name], name


class Killed(Exception):
    pass


def test_resumed_run_equals_uninterrupted_run_and_runs_are_deterministic(tmp_path):
    recipe = tiny_recipe()
    run(recipe, tmp_path / "a")
    run(recipe, tmp_path / "c")
    assert_same(weights(tmp_path / "a"), weights(tmp_path / "c"))  # same seed, same weights

    def kill_after_first_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 0:
            raise Killed

    with pytest.raises(Killed):
        run(recipe, tmp_path / "b", on_epoch_end=kill_after_first_epoch)
    assert torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    summary = run(recipe, tmp_path / "b")  # the rerun resumes at epoch 2
    assert_same(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert summary["step"] == 2.0

    # dvclive holds step 0 (untrained) to 2 once each, and the best score in metrics.json
    rows = (tmp_path / "b" / "live" / "plots" / "metrics" / "val" / "score.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in rows[1:]] == ["0", "1", "2"]
    metrics = json.loads((tmp_path / "b" / "live" / "metrics.json").read_text())
    assert metrics["step"] == 2 and metrics["best"]["score"] == summary["best/score"]
    best = torch.load(tmp_path / "b" / "checkpoints" / "best.pt", weights_only=True)
    assert best["meta"]["best_score"] == summary["best/score"]


def test_xbm_switched_off_mid_run_resumes_to_the_uninterrupted_state(tmp_path):
    """The stop (iteration 4) falls in epoch 2, after the kill at the end of epoch 1."""
    recipe = dataclasses.replace(
        tiny_recipe(epochs=3),
        loss=LossConfig(triplet_weight=1.0, xbm_weight=1.0, xbm_size=64, xbm_start_iteration=1, xbm_stop_iteration=4),
    )
    run(recipe, tmp_path / "a")

    def kill_after_first_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 0:
            raise Killed

    with pytest.raises(Killed):
        run(recipe, tmp_path / "b", on_epoch_end=kill_after_first_epoch)
    first = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)["trainer"]
    assert first["step"] < 4 and first["criterion"]["xbm.memory.embedding_memory"].any()
    run(recipe, tmp_path / "b")
    assert_same(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert not weights(tmp_path / "a")["criterion.xbm.memory.embedding_memory"].any()  # dropped


def test_second_stage_starts_from_the_first_stages_weights_and_restarts_when_they_change(tmp_path, caplog):
    run(tiny_recipe(epochs=1), tmp_path / "stage1")
    best = tmp_path / "stage1" / "checkpoints" / "best.pt"
    stage2 = tiny_recipe(epochs=1, max_per_identity=4)
    trainer = loop.Trainer(stage2, tiny_data(), loop.DistInfo(), init=best)
    assert_same(trainer.model.state_dict(), torch.load(best, weights_only=True)["model"])
    run(stage2, tmp_path / "stage2", init=best)
    run(tiny_recipe(epochs=1, seed=9), tmp_path / "stage1")  # stage 1 retrained: new weights
    with caplog.at_level(logging.INFO):
        run(stage2, tmp_path / "stage2", init=best)
    assert "training from scratch" in caplog.text
    with pytest.raises(ConfigError, match="do not fit"):
        other = dataclasses.replace(stage2, model=ModelConfig(backbone="test_efficientnet", embedding_dim=8))
        loop.Trainer(other, tiny_data(), loop.DistInfo(), init=best)


def test_the_stage_finds_the_first_stage_checkpoint_by_recipe_and_fold(tmp_path):
    (tmp_path / "params.yaml").write_text(f"train:\n  models: [a, b]\n  folds: [0]\n  out: {tmp_path}\n")
    params = StageParams(tmp_path / "params.yaml")
    recipe = tiny_recipe(init_from="a")
    assert stage_one_checkpoint(params, "b", tiny_recipe(), 0) is None
    with pytest.raises(ConfigError, match="train 'a' on fold 0 first"):
        stage_one_checkpoint(params, "b", recipe, 0)
    with pytest.raises(ConfigError, match="the recipe itself"):
        stage_one_checkpoint(params, "a", recipe, 0)
    path = tmp_path / "a" / "fold0" / "checkpoints" / "best.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert stage_one_checkpoint(params, "b", recipe, 0) == path


def test_changed_recipe_starts_over(tmp_path, caplog):
    run(tiny_recipe(epochs=1), tmp_path)
    with caplog.at_level(logging.INFO):
        run(tiny_recipe(epochs=1, seed=4), tmp_path)
    assert "training from scratch" in caplog.text
    fresh = tmp_path / "fresh"
    run(tiny_recipe(epochs=1, seed=4), fresh)
    assert_same(weights(tmp_path), weights(fresh))


def test_channels_last_computes_the_nchw_loss_and_gradients():
    """train.channels_last (the default) changes the memory layout only: the 4-D weights are
    NHWC, and one batch gives the NCHW run's loss and gradients up to fp32 rounding (over whole
    runs the two drift apart as any two fp32 summation orders do under Adam)."""
    trainers = [loop.Trainer(tiny_recipe(channels_last=flag), tiny_data(), loop.DistInfo()) for flag in (True, False)]
    convs = [p for p in trainers[0].model.parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert any(not p.is_contiguous() for p in convs)  # (C, 1, k, k) and (C, D, 1, 1) look the same either way
    images, labels = next(iter(trainers[0].loader))
    losses, grads = [], []
    for trainer in trainers:
        trainer.model.train()
        torch.manual_seed(0)  # the same dropout masks
        total, _, _ = trainer.forward_loss(images, labels)
        total.backward()
        losses.append(total.detach())
        grads.append({n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(losses[0], losses[1], atol=1e-5, rtol=1e-5)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name, grad in grads[0].items():  # relative to each tensor's norm: ~4e-6 here (a layout bug: ~1)
        assert float((grad - grads[1][name]).norm()) <= 1e-4 * float(grads[1][name].norm()) + 1e-6, name


def test_bf16_amp_path_trains(tmp_path):
    summary = run(tiny_recipe(epochs=1, amp="bf16"), tmp_path)
    assert math.isfinite(summary["train/loss"]) and summary["train/skipped_steps"] == 0
    # fp16 asks for CUDA; on CPU it falls back to bf16 and trains the same way
    fp16 = run(tiny_recipe(epochs=1, amp="fp16"), tmp_path / "fp16")
    assert fp16["train/loss"] == summary["train/loss"]


def poisoned_criterion(value: float) -> type[ReIDCriterion]:
    """The criterion, with its loss at iteration 1 multiplied by ``value`` (NaN or inf)."""

    class PoisonedCriterion(ReIDCriterion):
        def forward(self, output, labels, iteration, metric_mask=None):
            total, parts = super().forward(output, labels, iteration, metric_mask)
            return (total * value, parts) if iteration == 1 else (total, parts)

    return PoisonedCriterion


def test_non_finite_loss_step_is_skipped_and_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(loop, "ReIDCriterion", poisoned_criterion(float("nan")))
    with caplog.at_level(logging.WARNING):
        summary = run(tiny_recipe(epochs=1), tmp_path)
    assert summary["train/skipped_steps"] == 1
    assert "step 1: loss is NaN or inf; step skipped" in caplog.text
    assert all(torch.isfinite(t).all() for t in weights(tmp_path).values() if t.is_floating_point())


def test_frozen_stages_keep_weights_and_bn_statistics_until_unfrozen(tmp_path):
    recipe = tiny_recipe(unfreeze_epoch=1)
    recipe = dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, frozen_stages=2))
    seed_everything(recipe.train.seed)  # the loop builds its model right after seeding
    initial = {k: v.clone() for k, v in create_model(recipe.model, 11).state_dict().items()}
    frozen = [n for n, p in create_model(recipe.model, 11).named_parameters() if not p.requires_grad]
    frozen_bn = {n.rsplit(".", 1)[0] for n in frozen if n.endswith(".weight")}
    frozen_keys = [k for k in initial if k in frozen or k.rsplit(".", 1)[0] in frozen_bn]
    assert any(k.endswith("running_mean") for k in frozen_keys)
    after = {}

    def snapshot(epoch: int, metrics: dict[str, float]) -> None:
        after[epoch] = weights(tmp_path)

    run(recipe, tmp_path, on_epoch_end=snapshot)
    for key in frozen_keys:  # epoch 1: frozen parameters and BN statistics untouched
        assert torch.equal(after[0][key], initial[key]), key
    trainable = [k for k in initial if k.startswith("backbone.") and k not in frozen_keys and "running" not in k]
    assert any(not torch.equal(after[0][k], initial[k]) for k in trainable)
    changed = [k for k in frozen_keys if not torch.equal(after[1][k], initial[k])]  # epoch 2: unfrozen
    assert any(k.endswith("running_mean") for k in changed) and any(k.endswith("weight") for k in changed)


def test_load_trained_model_gives_the_eval_model_and_meta(tmp_path):
    summary = run(tiny_recipe(epochs=1), tmp_path)
    model, meta = load_trained_model(tmp_path / "checkpoints" / "best.pt")
    assert not model.training
    assert meta["input_size"] == 16 and meta["model_name"] == "tiny" and meta["fold"] == 0
    assert len(meta["mean"]) == 3 and len(meta["std"]) == 3
    assert meta["best_score"] == summary["best/score"]
    saved = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert_same(model.state_dict(), saved)


@pytest.mark.parametrize(
    "name", sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")
                   if not p.name.endswith(".params.yaml") and p.parent.name != "_base_")  # bases are partial
)
def test_shipped_recipes_build_and_embed(name):
    recipe = load_recipe(CONFIGS / name)
    model = create_model(recipe.model, num_classes=3).eval()
    with torch.no_grad():
        embedding = model.embed(torch.rand(2, 3, *height_width(recipe.train.input_size)))
    assert embedding.shape == (2, model.feature_dim) and torch.isfinite(embedding).all()


def test_non_square_input_trains_validates_and_records_its_shape(tmp_path):
    summary = run(tiny_recipe(epochs=1, input_size=(16, 8)), tmp_path)
    assert math.isfinite(summary["train/loss"]) and "val/score" in summary
    _, meta = load_trained_model(tmp_path / "checkpoints" / "best.pt")
    assert height_width(meta["input_size"]) == (16, 8)


def test_quarter_turns_with_a_non_square_input_are_refused(tmp_path):
    bad = tmp_path / "tall.yaml"
    bad.write_text("model: {backbone: resnet18}\ntrain: {epochs: 1, input_size: [32, 16]}\naugment: {rotate90_p: 0.3}\n")
    with pytest.raises(ConfigError, match=r"tall.yaml: Recipe: augment.rotate90_p must be 0 with a non-square train.input_size 32x16"):
        load_recipe(bad)


def test_recipe_unknown_key_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {backbone: resnet18}\ntrain: {epochs: 1, batch: 3}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'train.batch'"):
        load_recipe(bad)


@pytest.mark.parametrize("damage", ["best.pt truncated", "last.pt truncated", "best.pt deleted"])
def test_a_broken_checkpoint_is_never_the_base_of_a_resume(tmp_path, caplog, damage):
    """A finished run whose best.pt (what extract reads) or last.pt is damaged: the rerun says
    which file and retrains, to the same weights, instead of resuming after the last epoch with
    the broken file kept (or stopping on last.pt)."""
    from pipeline.train.checkpoint import load_checkpoint

    run(tiny_recipe(epochs=1), tmp_path)
    finished = weights(tmp_path)
    path = tmp_path / "checkpoints" / damage.split()[0]
    if damage.endswith("deleted"):
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:200])
    with caplog.at_level(logging.INFO):
        run(tiny_recipe(epochs=1), tmp_path)
    assert f"{path}" in caplog.text and "training from scratch" in caplog.text and "resuming" not in caplog.text
    load_checkpoint(tmp_path / "checkpoints" / "best.pt")  # readable again
    assert_same(weights(tmp_path), finished)
