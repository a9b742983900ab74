import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError
from pipeline.losses import BatchHardTripletLoss, CenterLoss, CentroidTripletLoss, LossConfig, ReIDCriterion
from pipeline.losses.centroid_triplet import centroid_distances
from pipeline.models import ModelOutput

DTYPES = [torch.float32, torch.float64]
LABELS = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 3])


def _features(dtype: torch.dtype, n: int = 10, d: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _hinge(ap: float, an: float, margin: float) -> float:
    return max(0.0, ap - an + margin) if margin > 0 else math.log1p(math.exp(ap - an))


def _brute_batch_hard(x: np.ndarray, y: np.ndarray, margin: float) -> float:
    losses = []
    for i in range(len(x)):
        pos = [np.linalg.norm(x[i] - x[j]) for j in range(len(x)) if y[j] == y[i] and j != i]
        neg = [np.linalg.norm(x[i] - x[j]) for j in range(len(x)) if y[j] != y[i]]
        losses.append(_hinge(max(pos), min(neg), margin))
    return float(np.mean(losses))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("margin", [0.3, 5.0, 0.0])
@pytest.mark.parametrize("normalize", [False, True])
def test_batch_hard_triplet_matches_brute_force(dtype, margin, normalize):
    x = _features(dtype)
    ref = F.normalize(x.double(), dim=1) if normalize else x.double()
    got = BatchHardTripletLoss(margin, normalize)(x, LABELS)
    expected = _brute_batch_hard(ref.numpy(), LABELS.numpy(), margin)
    assert got.dtype == dtype
    assert math.isclose(float(got), expected, rel_tol=1e-5)


def test_batch_hard_triplet_averages_over_all_anchors_including_zeros():
    # classes 0 and 1 are tight and far apart (zero loss); class 2 is spread between them
    x = torch.tensor([[0.0, 0], [0.1, 0], [10, 0], [10.1, 0], [2, 0], [8, 0]])
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    # by hand: anchor (2,0): 6 - 1.9 + 0.3 = 4.4; anchor (8,0): 6 - 2 + 0.3 = 4.3; others 0
    expected = (4.4 + 4.3) / 6  # PML's default reducer would give (4.4 + 4.3) / 2
    assert math.isclose(float(BatchHardTripletLoss(0.3)(x, y)), expected, rel_tol=1e-6)
    assert math.isclose(_brute_batch_hard(x.numpy(), y.numpy(), 0.3), expected, rel_tol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_center_loss_matches_brute_force(dtype):
    x = _features(dtype)
    loss = CenterLoss(num_classes=4, feature_dim=5)
    c = loss.centers.detach().double().numpy()
    expected = np.mean([np.sum((x[i].double().numpy() - c[y]) ** 2) for i, y in enumerate(LABELS)])
    assert math.isclose(float(loss(x, LABELS).detach()), expected, rel_tol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_centroid_distances_match_brute_force(dtype):
    x = _features(dtype)
    d_pos, d_neg = centroid_distances(x, LABELS)
    a, y = x.double().numpy(), LABELS.numpy()
    classes = sorted(set(y))
    for i in range(len(a)):
        others = [a[j] for j in range(len(a)) if y[j] == y[i] and j != i]
        assert math.isclose(float(d_pos[i]), np.linalg.norm(a[i] - np.mean(others, axis=0)), rel_tol=1e-5)
        for k, c in enumerate(classes):
            if c == y[i]:
                assert math.isinf(float(d_neg[i, k]))
            else:
                centroid = np.mean([a[j] for j in range(len(a)) if y[j] == c], axis=0)
                assert math.isclose(float(d_neg[i, k]), np.linalg.norm(a[i] - centroid), rel_tol=1e-5)


@pytest.mark.parametrize("margin", [0.3, 0.0])
def test_centroid_triplet_loss_matches_brute_force(margin):
    x = _features(torch.float64)
    a, y = x.numpy(), LABELS.numpy()
    losses = []
    for i in range(len(a)):
        positive = np.mean([a[j] for j in range(len(a)) if y[j] == y[i] and j != i], axis=0)
        negatives = [np.mean(a[y == c], axis=0) for c in set(y) if c != y[i]]
        losses.append(_hinge(np.linalg.norm(a[i] - positive), min(np.linalg.norm(a[i] - n) for n in negatives), margin))
    assert math.isclose(float(CentroidTripletLoss(margin)(x, LABELS)), np.mean(losses), rel_tol=1e-9)
    with pytest.raises(ValueError, match="2\\+ samples"):
        CentroidTripletLoss(margin)(x[:3], LABELS[:3])  # class 1 would have one sample


def _output(dtype=torch.float32, num_classes: int = 4) -> ModelOutput:
    x = _features(dtype).requires_grad_(True)
    logits = _features(dtype, d=num_classes, seed=1).requires_grad_(True)
    return ModelOutput(features=x, embeddings=x, logits=logits)


def _smoothed_ce(logits: np.ndarray, y: np.ndarray, eps: float) -> float:
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    k = logits.shape[1]
    return float(np.mean([-(1 - eps) * logp[i, t] - eps / k * logp[i].sum() for i, t in enumerate(y)]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_criterion_total_is_the_weighted_sum_of_reference_parts(dtype):
    config = LossConfig(center_weight=0.0005, centroid_triplet_weight=0.5, triplet_weight=2.0)
    criterion = ReIDCriterion(config, num_classes=4, feature_dim=5)
    output = _output(dtype)
    total, parts = criterion(output, LABELS, iteration=0)
    x, logits, y = output.features.detach().double().numpy(), output.logits.detach().double().numpy(), LABELS.numpy()
    expected = {
        "ce": _smoothed_ce(logits, y, 0.1),
        "triplet": _brute_batch_hard(x, y, 0.3),
        "center": float(criterion.center(output.features.detach().double(), LABELS).detach()),
        "centroid": float(CentroidTripletLoss(0.3)(output.features.detach().double(), LABELS)),
    }
    assert parts.keys() == expected.keys()
    for key, value in expected.items():
        assert math.isclose(parts[key], value, rel_tol=1e-5), key
    weights = {"ce": 1.0, "triplet": 2.0, "center": 0.0005, "centroid": 0.5}
    assert math.isclose(float(total.detach()), sum(weights[k] * v for k, v in expected.items()), rel_tol=1e-5)


def test_metric_losses_skip_singletons_and_masked_samples():
    criterion = ReIDCriterion(LossConfig(ce_weight=0.0, centroid_triplet_weight=1.0), 4, 5)
    output = _output()
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 3, 3])  # identity 2 is a singleton
    mask = torch.ones(10, dtype=torch.bool)
    mask[[2, 3]] = False  # identity 1 keeps one sample inside the mask: left out too
    _, parts = criterion(output, labels, 0, metric_mask=mask)
    keep = torch.tensor([0, 1, 6, 7, 8, 9])
    x, y = output.features.detach()[keep], labels[keep]
    assert math.isclose(parts["triplet"], _brute_batch_hard(x.double().numpy(), y.numpy(), 0.3), rel_tol=1e-5)
    assert math.isclose(parts["centroid"], float(CentroidTripletLoss(0.3)(x, y)), rel_tol=1e-5)


def test_metric_losses_are_a_connected_zero_without_two_valid_identities():
    config = LossConfig(centroid_triplet_weight=1.0, xbm_weight=1.0)
    criterion = ReIDCriterion(config, 4, 5)
    output = _output()
    labels = torch.tensor([0, 0, 0, 1, 2, 3, 1, 2, 3, 3])
    mask = torch.tensor([True] * 4 + [False] * 6)  # inside it only identity 0 has 2+ samples
    total, parts = criterion(output, labels, 0, metric_mask=mask)
    assert parts["triplet"] == parts["centroid"] == parts["xbm"] == 0.0
    assert criterion.xbm.memory.queue_idx == 0  # nothing enqueued
    total.backward()
    assert output.features.grad is not None and not output.features.grad.any()
    assert math.isclose(float(total.detach()), parts["ce"], rel_tol=1e-6)


def test_center_hook_rescales_gradients_for_the_center_optimiser():
    weight = 0.0005
    criterion = ReIDCriterion(LossConfig(ce_weight=0, triplet_weight=0, center_weight=weight), 4, 5)
    (centers,) = criterion.center_parameters()
    output = _output()
    total, parts = criterion(output, LABELS, 0)
    total.backward()
    raw = torch.autograd.grad(criterion.center(output.features.detach(), LABELS), centers)[0]
    assert torch.allclose(centers.grad, weight * raw)
    criterion.step_centers_hook()
    assert torch.allclose(centers.grad, raw, rtol=1e-5)
    assert ReIDCriterion(LossConfig(), 4, 5).center_parameters() == []


def test_criterion_under_bf16_autocast_matches_float32():
    criterion = ReIDCriterion(LossConfig(centroid_triplet_weight=1.0), 4, 5)
    output = _output()
    reference = criterion(output, LABELS, 0)[1]
    low = ModelOutput(output.features.bfloat16(), output.embeddings.bfloat16(), output.logits.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, parts = criterion(low, LABELS, 0)
    assert total.dtype == torch.float32
    for key in reference:
        assert math.isclose(parts[key], reference[key], rel_tol=0.05, abs_tol=0.02), key


def test_criterion_needs_logits_for_cross_entropy():
    output = ModelOutput(features=_features(torch.float32), embeddings=_features(torch.float32), logits=None)
    with pytest.raises(ValueError, match="classifier head"):
        ReIDCriterion(LossConfig(), 4, 5)(output, LABELS, 0)


def test_loss_config_from_yaml_mapping_is_validated():
    config = from_mapping(LossConfig, {"center_weight": 0.0005, "triplet_margin": 0}, "params.yaml")
    assert config.center_weight == 0.0005 and config.triplet_margin == 0.0
    with pytest.raises(ConfigError, match="unknown key 'tripletweight'"):
        from_mapping(LossConfig, {"tripletweight": 1.0}, "params.yaml")
    with pytest.raises(ConfigError, match="label_smoothing"):
        from_mapping(LossConfig, {"label_smoothing": 1.5}, "params.yaml")
    with pytest.raises(ValueError, match="nothing to train"):
        LossConfig(ce_weight=0, triplet_weight=0).validate()
