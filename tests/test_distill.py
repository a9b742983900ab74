"""Distillation: the divergences and the similarity term against hand-computed answers, the
teacher's bad inputs, and a tiny distillation run that resumes exactly."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError, DataError
from pipeline.losses.distill import cosine_similarities, js_distill, kl_distill, similarity_matching
from pipeline.models import ModelConfig
from pipeline.sections import DistillConfig
from pipeline.distill.trainer import DistillTrainer
from pipeline.train.distributed import DistInfo
from test_train_loop import Killed, assert_same, run, tiny_data, tiny_recipe, weights

ROOT = Path(__file__).resolve().parents[1]
CFG = DistillConfig(student="student", teachers=["teacher"], temperature=2.0)


def kl_reference(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * np.log(p / q)))


def test_kl_is_zero_for_equal_logits_and_matches_a_hand_case():
    logits = torch.randn(4, 7)
    assert float(kl_distill(logits, logits.clone(), 3.0)) == pytest.approx(0.0, abs=1e-6)
    # teacher (0.5, 0.5), student (0.75, 0.25): KL = 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25) = 0.5 ln(4/3)
    student, teacher = torch.tensor([[math.log(3.0), 0.0]]), torch.zeros(1, 2)
    assert float(kl_distill(student, teacher, 1.0)) == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)


@pytest.mark.parametrize("loss", [kl_distill, js_distill])
def test_temperature_softens_the_logits_and_scales_by_its_square(loss):
    student, teacher = torch.randn(5, 6) * 3, torch.randn(5, 6) * 3
    for t in (0.5, 2.0, 4.0):
        assert float(loss(student, teacher, t)) == pytest.approx(t**2 * float(loss(student / t, teacher / t, 1.0)), rel=1e-5)


def test_js_is_zero_for_equal_symmetric_bounded_and_matches_a_hand_case():
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    assert float(js_distill(a, a.clone(), 2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(js_distill(a, b, 2.0)) == pytest.approx(float(js_distill(b, a, 2.0)), rel=1e-6)
    p, q = np.array([0.5, 0.5]), np.array([0.75, 0.25])
    m = (p + q) / 2
    expected = 0.5 * (kl_reference(p, m) + kl_reference(q, m))
    assert float(js_distill(torch.tensor([[math.log(3.0), 0.0]]), torch.zeros(1, 2), 1.0)) == pytest.approx(expected, rel=1e-6)
    # disjoint distributions: JS reaches its bound ln 2 (KL would be huge)
    far = float(js_distill(torch.tensor([[50.0, -50.0]]), torch.tensor([[-50.0, 50.0]]), 1.0))
    assert far == pytest.approx(math.log(2.0), rel=1e-6)


def test_similarity_matching_is_zero_up_to_scale_rotation_and_dimension():
    teacher = torch.randn(6, 4, dtype=torch.float64)
    # scaled rows and an isometry into 9 dimensions keep every cosine: nothing to learn
    isometry = torch.linalg.qr(torch.randn(9, 4, dtype=torch.float64)).Q.T  # (4, 9), orthonormal rows
    student = (teacher * torch.rand(6, 1, dtype=torch.float64).add(0.5)) @ isometry
    assert float(similarity_matching(student, cosine_similarities(teacher))) == pytest.approx(0.0, abs=1e-6)
    # a student that pairs the images up differently is penalised: hand case on 2-d unit vectors
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # orthogonal: cosine 0
    student = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # identical: cosine 1
    assert float(similarity_matching(student, cosine_similarities(teacher))) == pytest.approx(2 / 4)


def test_config_refuses_no_term_and_bad_temperature():
    with pytest.raises(ValueError, match="no distillation term"):
        DistillConfig(student="s", teachers=["t"], logit_loss="none", embedding_weight=0.0).validate()
    with pytest.raises(ValueError, match="temperature must be positive"):
        DistillConfig(student="s", teachers=["t"], temperature=0.0).validate()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    run(tiny_recipe(epochs=1), out)
    return out / "checkpoints" / "best.pt"


def distill(out, teacher, cfg=CFG, data=None, **kwargs):
    from pipeline.train.loop import fit

    student = dataclasses.replace(tiny_recipe(input_size=12), model=ModelConfig(backbone="test_efficientnet"))
    return fit(student, data or tiny_data(), out, model_name="student", fold=0,
               make_trainer=partial(DistillTrainer, cfg=cfg, teachers=[teacher]), **kwargs)


def test_a_tiny_distillation_run_resumes_exactly_and_logs_its_terms(tmp_path, teacher):
    summary = distill(tmp_path / "a", teacher)
    assert summary["train/distill_logit"] > 0 and summary["train/distill_embedding"] > 0

    def kill_after_first_epoch(epoch, metrics):
        if epoch == 0:
            raise Killed

    with pytest.raises(Killed):
        distill(tmp_path / "b", teacher, on_epoch_end=kill_after_first_epoch)
    resumed = distill(tmp_path / "b", teacher)
    assert resumed["step"] == 2.0
    assert_same(weights(tmp_path / "a"), weights(tmp_path / "b"))
    # a teacher ensemble of the same model twice teaches exactly what the model alone does
    ensemble = DistillTrainer(tiny_recipe(), tiny_data(), DistInfo(), cfg=CFG, teachers=[teacher, teacher])
    single = DistillTrainer(tiny_recipe(), tiny_data(), DistInfo(), cfg=CFG, teachers=[teacher])
    images = torch.from_numpy(tiny_data().images[:8])
    for ours, theirs in zip(ensemble.teacher(images), single.teacher(images)):
        assert torch.allclose(ours, theirs, atol=1e-6)


def test_a_teacher_of_other_classes_is_named(tmp_path, teacher):
    data = tiny_data()
    fewer = dataclasses.replace(data, train_rows=data.train_rows[:36])  # 9 identities, the teacher knows 11
    with pytest.raises(DataError, match=rf"{teacher}: num_classes is 11 but the student's fold has 9"):
        distill(tmp_path, teacher, data=fewer)
    assert not (tmp_path / "checkpoints").exists()


def distill_stage():
    spec = importlib.util.spec_from_file_location("distill_stage", ROOT / "stages/distill.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    return stage


def test_the_stage_names_a_missing_teacher_checkpoint_or_an_unknown_teacher(tmp_path):
    params = tmp_path / "params.yaml"
    base = (f"train: {{models: [lite1], folds: [0], out: {tmp_path}/models, recipes: {ROOT}/configs/demo}}\n"
            "preprocess: {out: cache}\nfolds: {out: folds.csv}\n")
    params.write_text(base + "distill: {student: student_lite0, teachers: [lite1]}\n")
    missing = tmp_path / "models" / "lite1" / "fold0" / "checkpoints" / "best.pt"
    with pytest.raises(DataError, match=f"missing checkpoints .*{missing}"):
        distill_stage().main(["--params", str(params), "--fold", "0"])
    params.write_text(base + "distill: {student: student_lite0, teachers: [lite2]}\n")
    with pytest.raises(ConfigError, match="distill.teachers names 'lite2', which train.models does not list"):
        distill_stage().main(["--params", str(params), "--fold", "0"])
    assert not (tmp_path / "outputs").exists()
