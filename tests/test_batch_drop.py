"""Batch DropBlock: one band per batch, a second branch with its own losses, retrieval unchanged."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from pipeline.losses import LossConfig, ReIDCriterion
from pipeline.models import ModelConfig, create_model
from pipeline.models.batch_drop import batch_drop

BACKBONE = "test_efficientnet"  # timm's tiny test model: 256 features
IMAGES = torch.randn(8, 3, 128, 128, generator=torch.Generator().manual_seed(0))  # a 4 x 4 feature map
LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


@pytest.mark.parametrize(("height_ratio", "width_ratio", "block"), [(0.3, 1.0, (3, 4)), (0.5, 0.5, (5, 2))])
def test_the_same_block_is_zeroed_in_every_sample_and_channel(height_ratio, width_ratio, block):
    tops = set()
    for seed in range(30):
        torch.manual_seed(seed)
        out = batch_drop(torch.ones(3, 2, 10, 4), height_ratio, width_ratio)
        zero = out == 0
        assert (zero == zero[0, 0]).all()  # one mask for the whole batch and every channel
        rows, cols = torch.nonzero(zero[0, 0], as_tuple=True)
        assert int(zero[0, 0].sum()) == block[0] * block[1]
        assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == block  # one contiguous block
        assert (out[~zero] == 1).all()
        tops.add(int(rows.min()))
    assert tops == set(range(10 - block[0] + 1))  # every position is drawn


def models() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    plain = create_model(ModelConfig(BACKBONE), num_classes=4)
    torch.manual_seed(0)
    dropped = create_model(ModelConfig(BACKBONE, batch_drop=True), num_classes=4)
    return plain, dropped


def test_retrieval_is_unchanged_and_the_branch_trains_only():
    plain, dropped = models()
    assert all(torch.equal(v, dropped.state_dict()[k]) for k, v in plain.state_dict().items())
    plain.eval(), dropped.eval()
    with torch.no_grad():
        assert torch.equal(plain.embed(IMAGES), dropped.embed(IMAGES))
        assert dropped(IMAGES).branches == ()
    dropped.train()
    out = dropped(IMAGES, LABELS)
    (branch,) = out.branches
    assert branch.features.shape == branch.embeddings.shape == (8, 256) and branch.logits.shape == (8, 4)
    head = {id(p) for p in dropped.parameter_groups()["head"]}
    assert all(id(p) in head for p in dropped.batch_drop.parameters() if p.requires_grad)


def test_the_branch_adds_its_own_cross_entropy_and_triplet_terms():
    _, model = models()
    criterion = ReIDCriterion(LossConfig(triplet_weight=2.0), 4, 256)
    out = model.train()(IMAGES, LABELS)
    total, parts = criterion(out, LABELS, 0)
    assert parts.keys() == {"ce", "triplet", "bdb_ce", "bdb_triplet"}
    (branch,) = out.branches
    expected_ce = float(F.cross_entropy(branch.logits.detach(), LABELS, label_smoothing=0.1))
    assert math.isclose(parts["bdb_ce"], expected_ce, rel_tol=1e-5)
    assert math.isclose(parts["bdb_triplet"], float(criterion.triplet(branch.features.detach(), LABELS)), rel_tol=1e-5)
    weights = {"ce": 1.0, "triplet": 2.0, "bdb_ce": 1.0, "bdb_triplet": 2.0}
    assert math.isclose(float(total.detach()), sum(weights[k] * v for k, v in parts.items()), rel_tol=1e-5)
    total.backward()
    assert model.batch_drop.bottleneck.conv1.weight.grad.abs().sum() > 0


def test_a_block_covering_the_whole_map_is_refused():
    with pytest.raises(ValueError, match="all of it"):
        batch_drop(torch.ones(2, 1, 1, 1), 0.3, 1.0)


def test_bad_ratios_are_refused():
    with pytest.raises(ValueError, match="batch_drop_height"):
        ModelConfig(BACKBONE, batch_drop=True, batch_drop_height=1.0).validate()
    with pytest.raises(ValueError, match="batch_drop_width"):
        ModelConfig(BACKBONE, batch_drop=True, batch_drop_width=0.0).validate()
