"""Training on CUDA: fp16 with the grad scaler and bf16 against fp32, the NaN/inf skip,
resuming a CUDA run, and TTA extraction on CUDA against the CPU."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pytest
import torch

from pipeline.infer.tta import extract_features
from pipeline.losses import LossConfig
from pipeline.models import ModelConfig, create_model
from pipeline.train import loop
from pipeline.train.distributed import DistInfo
from pipeline.train.schedule import OptimConfig
from pipeline.core.sections import TTAConfig
from test_train_loop import Killed, poisoned_criterion, run, tiny_data, tiny_recipe, weights

pytestmark = pytest.mark.gpu


def first_step(amp: str, cuda: torch.device) -> tuple[loop.Trainer, torch.Tensor]:
    """One training step from the seeded initial weights; returns the trainer and the update."""
    recipe = tiny_recipe(amp=amp)
    recipe = dataclasses.replace(
        recipe,
        model=dataclasses.replace(recipe.model, dropout=0.0),
        # CE alone (batch-hard mining could pick another negative under another precision);
        # plain SGD, which unlike Adam would show a gradient left scaled by the grad scaler.
        loss=LossConfig(ce_weight=1.0, triplet_weight=0.0, center_weight=0.0),
        optim=OptimConfig(optimizer="sgd", lr=0.05, momentum=0.0, weight_decay=0.0),
    )
    trainer = loop.Trainer(recipe, tiny_data(), DistInfo(device=cuda))
    trainer.sampler.set_epoch(0)
    trainer.augment.reset()
    trainer.net.train()
    before = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
    images, labels = next(iter(trainer.loader))
    assert trainer.train_step(images, labels) is not None
    after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    return trainer, after - before


@pytest.mark.parametrize(("amp", "min_cosine"), [("fp16", 0.995), ("bf16", 0.98)])
def test_amp_step_on_cuda_matches_the_fp32_step(cuda, amp, min_cosine):
    _, reference = first_step("none", cuda)
    trainer, update = first_step(amp, cuda)
    assert trainer.amp == amp
    assert trainer.scaler.is_enabled() == (amp == "fp16")  # bf16 needs no scaler
    if amp == "fp16":
        assert trainer.scaler.get_scale() == 2.0**16  # no overflow in one small step
    cosine = torch.nn.functional.cosine_similarity(update, reference, dim=0).item()
    ratio = (update.norm() / reference.norm()).item()
    # A gradient left scaled (or scaled twice) would be off by 2^16 in norm.
    assert cosine >= min_cosine and abs(ratio - 1.0) < 0.05, (cosine, ratio)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_amp_epoch_trains_on_cuda(tmp_path, cuda, amp):
    summary = run(tiny_recipe(epochs=1, amp=amp), tmp_path, info=DistInfo(device=cuda))
    assert math.isfinite(summary["train/loss"]) and summary["train/skipped_steps"] == 0
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert ("scale" in state["trainer"]["scaler"]) == (amp == "fp16")


def test_non_finite_loss_step_is_skipped_on_cuda(tmp_path, cuda, monkeypatch, caplog):
    monkeypatch.setattr(loop, "ReIDCriterion", poisoned_criterion(float("inf")))
    with caplog.at_level(logging.WARNING):
        summary = run(tiny_recipe(epochs=1, amp="fp16"), tmp_path, info=DistInfo(device=cuda))
    assert summary["train/skipped_steps"] == 1
    assert "step 1: loss is NaN or inf; step skipped" in caplog.text
    assert all(torch.isfinite(t).all() for t in weights(tmp_path).values() if t.is_floating_point())


def test_killed_cuda_run_resumes_to_the_uninterrupted_weights(tmp_path, cuda, caplog):
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        recipe = tiny_recipe(amp="fp16")
        info = DistInfo(device=cuda)
        run(recipe, tmp_path / "whole", info=info)

        def kill_after_first_epoch(epoch: int, metrics: dict[str, float]) -> None:
            if epoch == 0:
                raise Killed

        with pytest.raises(Killed):
            run(recipe, tmp_path / "resumed", info=info, on_epoch_end=kill_after_first_epoch)
        with caplog.at_level(logging.INFO):
            run(recipe, tmp_path / "resumed", info=info)  # restores CPU and CUDA RNG states too
        assert "resuming after epoch 1 of 2" in caplog.text
        whole, resumed = weights(tmp_path / "whole"), weights(tmp_path / "resumed")
        assert whole.keys() == resumed.keys()
        for name in whole:  # deterministic kernels: equal up to float32 reduction order
            torch.testing.assert_close(resumed[name], whole[name], atol=1e-4, rtol=1e-4, msg=name)
    finally:
        torch.use_deterministic_algorithms(False)


def tta_features(device: torch.device, images: np.ndarray) -> np.ndarray:
    torch.manual_seed(0)
    model = create_model(ModelConfig(backbone="test_efficientnet"), num_classes=0).to(device)
    cfg = TTAConfig(scales=(1.0, 1.25), rotations=(0, 90), flip=True, batch_size=16)
    return extract_features(model, images, input_size=32, mean=(0.5,) * 3, std=(0.25,) * 3, cfg=cfg)


def test_tta_extraction_on_cuda_equals_cpu(cuda):
    images = np.random.default_rng(5).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    cpu = tta_features(torch.device("cpu"), images)
    conv_tf32 = torch.backends.cudnn.allow_tf32
    try:
        # Strict float32: only the summation order differs, ~1e-6 relative over this small
        # network; 1e-4 on unit-length features leaves a wide margin and still catches a
        # wrong view, scale or normalisation (those move features by 1e-2 and more).
        torch.backends.cudnn.allow_tf32 = False
        np.testing.assert_allclose(tta_features(cuda, images), cpu, atol=1e-4, rtol=0)
        # torch's default on CUDA: TF32 convolutions (10-bit mantissa, unit roundoff 2^-11 =
        # 4.9e-4 per product); a few layers of that leave well under 3e-3 on unit features.
        torch.backends.cudnn.allow_tf32 = True
        np.testing.assert_allclose(tta_features(cuda, images), cpu, atol=3e-3, rtol=0)
    finally:
        torch.backends.cudnn.allow_tf32 = conv_tf32
