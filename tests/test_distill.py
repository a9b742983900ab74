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

from pipeline.core.errors import ConfigError, DataError
from pipeline.core.config import from_mapping
from pipeline.losses.distill import (
    cosine_similarities,
    js_distill,
    kl_distill,
    l1_distill,
    pkt_distill,
    similarity_matching,
)
from pipeline.models import ModelConfig
from pipeline.core.sections import DistillConfig
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


def test_l1_is_the_mean_absolute_logit_difference():
    assert float(l1_distill(torch.tensor([[1.0, -2.0], [3.0, 4.0]]), torch.zeros(2, 2))) == pytest.approx(2.5)
    student, teacher = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    expected = np.mean([abs(a - b) for a, b in zip(student.flatten().tolist(), teacher.flatten().tolist())])
    assert float(l1_distill(student, teacher)) == pytest.approx(expected, rel=1e-6)
    # its scale does not grow with the number of classes: the same gap on 10x the classes
    assert float(l1_distill(torch.ones(3, 70), torch.zeros(3, 70))) == pytest.approx(1.0)


def pkt_reference(student: np.ndarray, teacher: np.ndarray, eps: float = 1e-7) -> float:
    """PKT by loops: cosine kernel (cos + 1) / 2, rows normalised, KL(teacher || student) per row."""
    def distributions(x: np.ndarray) -> np.ndarray:
        n = len(x)
        kernel = np.array([[(x[i] @ x[j] / np.linalg.norm(x[i]) / np.linalg.norm(x[j]) + 1) / 2 for j in range(n)]
                           for i in range(n)])
        return kernel / kernel.sum(axis=1, keepdims=True)

    s, t = distributions(student), distributions(teacher)
    rows = [sum(t[i, j] * math.log((t[i, j] + eps) / (s[i, j] + eps)) for j in range(len(s))) for i in range(len(s))]
    return float(np.mean(rows))


def test_pkt_matches_a_brute_force_reference_and_fast_reids_mean_times_the_batch():
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(6, 5, dtype=torch.float64, generator=generator)
    teacher = torch.randn(6, 9, dtype=torch.float64, generator=generator)  # other dimensions: only cosines count
    got = float(pkt_distill(student, cosine_similarities(teacher)))
    assert got == pytest.approx(pkt_reference(student.numpy(), teacher.numpy()), rel=1e-5)
    assert got > 0
    # fast-reid's pkt_loss takes the mean over the 6 x 6 entries: the same value / batch size
    s = cosine_similarities(student).numpy()
    t = cosine_similarities(teacher).numpy()
    p_s, p_t = (s + 1) / 2, (t + 1) / 2
    p_s, p_t = p_s / p_s.sum(1, keepdims=True), p_t / p_t.sum(1, keepdims=True)
    fast_reid = np.mean(p_t * np.log((p_t + 1e-7) / (p_s + 1e-7)))
    assert got == pytest.approx(6 * fast_reid, rel=1e-6)


def test_pkt_hand_case_and_invariances():
    # teacher orthogonal pair: kernel rows (1, 0.5) -> (2/3, 1/3); student identical pair: (1/2, 1/2)
    teacher, student = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    expected = 2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3)
    assert float(pkt_distill(student, cosine_similarities(teacher))) == pytest.approx(expected, rel=1e-5)
    # scaled rows and an isometry into another dimension keep every cosine: nothing to learn
    teacher = torch.randn(6, 4, dtype=torch.float64)
    isometry = torch.linalg.qr(torch.randn(9, 4, dtype=torch.float64)).Q.T
    same = (teacher * torch.rand(6, 1, dtype=torch.float64).add(0.5)) @ isometry
    assert float(pkt_distill(same, cosine_similarities(teacher))) == pytest.approx(0.0, abs=1e-6)
    # opposite embeddings give a 0 kernel entry: finite, and the gradient reaches the student
    student = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = pkt_distill(student, cosine_similarities(torch.eye(3)))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all() and float(student.grad.abs().sum()) > 0


def test_config_takes_fastreids_losses_from_params():
    cfg = from_mapping(
        DistillConfig, {"student": "s", "teachers": ["t"], "logit_loss": "l1", "embedding_loss": "pkt"}, "params.yaml", "distill"
    )
    assert (cfg.logit_loss, cfg.embedding_loss, cfg.uses_logits) == ("l1", "pkt", True)
    with pytest.raises(ConfigError, match=r"'distill.embedding_loss' must be one of 'mse', 'pkt', got 'cosine'"):
        from_mapping(DistillConfig, {"student": "s", "teachers": ["t"], "embedding_loss": "cosine"}, "params.yaml", "distill")


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


@pytest.mark.parametrize(("logit_loss", "embedding_loss"), [("l1", "pkt"), ("js", "mse")])
def test_the_trainer_adds_the_chosen_terms_with_their_weights(teacher, logit_loss, embedding_loss):
    cfg = dataclasses.replace(CFG, logit_loss=logit_loss, embedding_loss=embedding_loss, logit_weight=0.5, embedding_weight=3.0)
    trainer = DistillTrainer(tiny_recipe(), tiny_data(), DistInfo(), cfg=cfg, teachers=[teacher])
    data = tiny_data()
    images, labels = torch.from_numpy(data.images[:8]), torch.arange(8) % 4
    torch.manual_seed(0)
    total, parts, output = trainer.forward_loss(images, labels)
    teacher_logits, teacher_similarities = trainer.teacher(images)
    logit = {"l1": lambda: l1_distill(output.logits, teacher_logits), "js": lambda: js_distill(output.logits, teacher_logits, 2.0)}
    embedding = {"pkt": pkt_distill, "mse": similarity_matching}[embedding_loss]
    student = trainer.model.retrieval_embedding(output)
    with torch.no_grad():
        assert parts["distill_logit"] == pytest.approx(0.5 * float(logit[logit_loss]()), rel=1e-5)
        assert parts["distill_embedding"] == pytest.approx(3.0 * float(embedding(student, teacher_similarities)), rel=1e-5)
    others = sum(v for k, v in parts.items() if k.startswith("distill_"))
    assert float(total.detach()) >= others > 0


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
