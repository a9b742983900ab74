"""pipeline.chain.joint_rerank and fuse.joint_rerank: fuse the features, then re-rank once."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.chain.fuse import fuse_models
from pipeline.chain.joint_rerank import choose_joint, joint_features
from pipeline.chain.model_inputs import ModelInputs
from pipeline.chain.oof_fusion import oof_labels
from pipeline.chain.rerank import rerank_model, rerank_options
from pipeline.data.folds import read_folds
from pipeline.core.errors import DataError
from pipeline.infer.store import FeatureSet, ModelFeatures
from pipeline.retrieval.candidates import CandidateLists
from pipeline.core.sections import FuseConfig, RerankStageConfig

PLAIN = RerankStageConfig(enabled=False)  # options raw and reranked, both plain cosine
IDENTITIES = "abcd"
# Model m sees only whether an identity is in {a, b} or {c, d}; model n only {a, c} or {b, d}.
# Neither tells all four apart; side by side they do.
CODES = {"m": {"a": [1, 0], "b": [1, 0], "c": [0, 1], "d": [0, 1]}, "n": {"a": [1, 0], "b": [0, 1], "c": [1, 0], "d": [0, 1]}}


def feature_set(model: str, ids: list[str]) -> FeatureSet:
    return FeatureSet(np.array([CODES[model][i[0]] for i in ids], np.float32), ids)


def features(model: str) -> ModelFeatures:
    """Test queries a-q .. d-q against gallery a-g .. d-g; fold 0 holds out a1 .. d1 against a2 .. d2."""
    sets = {name: feature_set(model, [f"{i}{suffix}" for i in IDENTITIES]) for name, suffix in
            (("query", "-q"), ("gallery", "-g"), ("oof_query", "1"), ("oof_gallery", "2"))}
    return ModelFeatures(sets["query"], sets["gallery"], {0: (sets["oof_query"], sets["oof_gallery"])})


@pytest.fixture
def folds_file(tmp_path: Path) -> Path:
    path = tmp_path / "folds.csv"
    ids = [f"{i}{n}" for i in IDENTITIES for n in (1, 2)]
    pd.DataFrame({"image": ids, "label": [i[0] for i in ids], "fold": 0, "role": "train"}).to_csv(path, index=False)
    return path


def labels_of(folds_file: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    oof = features("m").oof[0]
    return oof_labels(read_folds(folds_file), {0: (oof[0].ids, oof[1].ids)})


def test_joint_cosine_is_the_weighted_mean_of_the_models_cosines():
    rng = np.random.default_rng(0)
    models = [
        ModelFeatures(FeatureSet(rng.normal(size=(5, d)).astype(np.float32), [f"q{i}" for i in range(5)]),
                      FeatureSet(rng.normal(size=(7, d)).astype(np.float32), [f"g{i}" for i in range(7)]))
        for d in (4, 6, 3)
    ]
    weights = [0.2, 0.0, 0.6]
    joint = joint_features(models, weights)

    def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (a, b))
        return a @ b.T

    expected = sum(w / sum(weights) * cosine(m.query.features, m.gallery.features) for m, w in zip(models, weights))
    np.testing.assert_allclose(joint.query.features @ joint.gallery.features.T, expected, atol=1e-6)
    assert joint.query.features.shape == (5, 4 + 3)  # the weight-0 model is left out
    assert joint.gallery.ids == models[0].gallery.ids
    with pytest.raises(DataError, match="2 models, weights"):
        joint_features(models[:2], [1.0])


def test_out_of_fold_sets_and_distractors_are_joined_row_by_row():
    def with_distractors(model: str) -> ModelFeatures:
        base = features(model)
        return ModelFeatures(base.query, base.gallery, base.oof, distractors={0: feature_set(model, ["a-x", "d-x"])})

    joint = joint_features([with_distractors("m"), with_distractors("n")], [1.0, 1.0])
    gallery, count = joint.oof_gallery(0)
    assert count == 2 and gallery.ids == ["a2", "b2", "c2", "d2", "a-x", "d-x"]
    half = np.sqrt(0.5)
    np.testing.assert_allclose(joint.distractors[0].features, [[half, 0, half, 0], [0, half, 0, half]], atol=1e-6)


def test_the_joint_features_separate_what_neither_model_does(folds_file):
    labels = labels_of(folds_file)
    alone = [rerank_model(features(m), PLAIN)["oof0_raw"].indices[:, 0] for m in ("m", "n")]
    # alone, each model confuses two pairs: half its first hits are wrong
    assert [np.mean(first == np.arange(4)) for first in alone] == [0.5, 0.5]
    choice = choose_joint([features("m"), features("n")], [0.5, 0.5], PLAIN, labels)
    assert choice.option_scores == {"raw": pytest.approx(1.0), "reranked": pytest.approx(1.0)}
    assert choice.chosen == "raw"  # ties go to the earlier option
    np.testing.assert_array_equal(choice.lists.indices[:, 0], np.arange(4))  # each test query finds its own identity


def model_inputs(name: str, rows: list[tuple[list[int], list[float]]], codes: str | None = None) -> ModelInputs:
    """The features of model ``codes`` (default: ``name``) as above, with stored lists given by
    hand: (gallery rows, distances) per query, alike for every option, test and out-of-fold sets."""
    hand = CandidateLists(np.array([r for r, _ in rows], np.int64), np.array([d for _, d in rows], np.float32))
    sets = {option: hand for option in ("raw", "reranked", "oof0_raw", "oof0_reranked")}
    return ModelInputs(sets, Path(f"{name}.npz"), features(codes or name), Path(f"features/{name}"))


SURE, UNSURE = [0.0, 1.0, 1.0, 1.0], [0.0, 0.01, 1.0, 1.0]  # a clear first hit; a near tie with the second
# Queries a, b, c, d against gallery rows a, b, c, d. Alone each model ranks two queries right;
# mixed, the unsure mistakes are outvoted and only d (wrong in both, surely) stays wrong.
M_LISTS = [([0, 1, 2, 3], SURE), ([0, 1, 2, 3], UNSURE), ([2, 3, 0, 1], SURE), ([2, 3, 0, 1], SURE)]
N_LISTS = [([1, 0, 2, 3], UNSURE), ([1, 0, 2, 3], SURE), ([3, 2, 0, 1], UNSURE), ([1, 3, 0, 2], SURE)]
# Four test queries against four gallery images would make fuse.tuning_shape auto single-shot; any
# out-of-fold gain counts (min_gain_se 0) where the paired test is not what a test is about.
ANY_GAIN = FuseConfig(tuning_shape="folds", min_gain_se=0.0)


def test_tuned_fuse_submits_the_joint_re_ranking_where_it_wins_out_of_fold(folds_file, caplog):
    models = {"m": model_inputs("m", M_LISTS), "n": model_inputs("n", N_LISTS)}
    options = rerank_options(PLAIN)
    fused_off, off = fuse_models(replace(ANY_GAIN, joint_rerank=False), models, options, folds_file, "p.yaml", joint=PLAIN)
    assert "joint" not in off and off["submitted"] == "fusion" and off["oof_score"] < 1.0
    np.testing.assert_array_equal(fused_off.indices[:, 0], [0, 1, 2, 1])  # d stays wrong
    with caplog.at_level(logging.INFO, logger="fuse"):
        fused, record = fuse_models(replace(ANY_GAIN, joint_rerank=True), models, options, folds_file, "p.yaml", joint=PLAIN)
    assert record["joint"]["submitted"] is True and record["submitted"] == "joint re-ranking (raw)"
    assert record["oof_score"] == pytest.approx(1.0) and record["joint"]["weights"] == list(record["weights"].values())
    np.testing.assert_array_equal(fused.indices[:, 0], np.arange(4))
    assert "joint re-ranking raw: 1.0000*" in caplog.text
    # Three standard errors asked. The lists fusion scores 1, 1, 1, 0.125 per query (d's match at rank
    # 4) against m alone's 1, 0.25, 1, 0.25: gain 0.15625 +- 0.2001, not submitted; m alone is. The
    # joint re-ranking's gain over m alone, 0, 0.75, 0, 0.75, is 0.375 +- 0.2165: short of 3 x 0.2165.
    fused, record = fuse_models(replace(ANY_GAIN, joint_rerank=True, min_gain_se=3.0), models, options, folds_file, "p.yaml", joint=PLAIN)
    assert record["submitted"] == "m alone" and record["joint"]["submitted"] is False
    fusion_test = record["fusion"]["test"]
    assert fusion_test["mean_gain"] == pytest.approx(0.15625) and fusion_test["against"] == "m [raw]"
    assert fusion_test["se"] == pytest.approx(np.std([0, 0.75, 0, -0.125], ddof=1) / 2)
    test = record["joint"]["test"]
    assert (test["mean_gain"], test["se"], test["queries"], test["passed"]) == (pytest.approx(0.375), pytest.approx(0.375 / np.sqrt(3)), 4, False)
    np.testing.assert_array_equal(fused.indices, models["m"].lists["raw"].indices)


def test_the_lists_fusion_stays_where_the_joint_does_not_beat_it(folds_file, caplog):
    # the same lists, but both models with m's features: joined, they still confuse a / b and c / d
    models = {"m": model_inputs("m", M_LISTS), "n": model_inputs("n", N_LISTS, codes="m")}
    options = rerank_options(PLAIN)
    fused, record = fuse_models(replace(ANY_GAIN, joint_rerank=True), models, options, folds_file, "p.yaml", joint=PLAIN)
    assert record["joint"]["submitted"] is False and record["joint"]["oof_score"] < record["oof_score"]
    assert record["submitted"] == "fusion"
    np.testing.assert_array_equal(fused.indices[:, 0], [0, 1, 2, 1])
    # a single model: nothing to join
    with caplog.at_level(logging.INFO, logger="fuse"):
        _, record = fuse_models(replace(ANY_GAIN, joint_rerank=True), {"m": models["m"]}, options, folds_file, "p.yaml", joint=PLAIN)
    assert "joint" not in record and "not tried: the tuned mix has a single model" in caplog.text
