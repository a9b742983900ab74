"""The tuned fuse stage's choice: options per model, pooled folds, never worse than one model."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.retrieval.candidates import CandidateLists
from pipeline.chain.fuse_choice import (
    choice_record,
    choice_table,
    choose_fusion,
    chosen_options,
    tuning_set_size,
)
from pipeline.chain.oof_fusion import fuse_lists, pooled_score, tune_weights_on_folds
from pipeline.chain.rerank import rerank_model, rerank_options
from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError, DataError
from pipeline.infer.store import FeatureSet, ModelFeatures
from pipeline.core.sections import FuseConfig, RerankGrid, RerankStageConfig

sys.path.insert(0, str(Path(__file__).parent))
from reference_rerank import euclidean_distances, re_ranking  # noqa: E402

# Every fold below: queries labelled x, y against a gallery x, y, x, y (two matches each).
QUERY = np.array(["x", "y"])
GALLERY = np.array(["x", "y", "x", "y"])
# Per-query rankings of that gallery: every match first (AP@4 1, top-1 hit: score 1), or a
# wrong item first and the matches at ranks 2 and 4 (AP@4 (1/2 + 2/4) / 2 = 0.5, no hit:
# score 0.5 * 0 + 0.5 * 0.5 = 0.25).
RIGHT = {"x": [0, 2, 1, 3], "y": [1, 3, 0, 2]}
WRONG = {"x": [1, 0, 3, 2], "y": [0, 1, 2, 3]}


def ranked(rows: list[list[int]]) -> CandidateLists:
    """Lists with the given per-query order and evenly spaced distances 0.1, 0.2, ..."""
    indices = np.array(rows, dtype=np.int64)
    return CandidateLists(indices, np.tile(np.arange(1, indices.shape[1] + 1, dtype=np.float32) / 10, (len(rows), 1)))


def fold(*good: bool, labels: np.ndarray = QUERY) -> CandidateLists:
    """A fold's lists for queries ``labels``: each query ranked RIGHT where ``good`` says so, else WRONG."""
    return ranked([(RIGHT if ok else WRONG)[label] for ok, label in zip(good, labels)])


def test_chooser_takes_raw_where_reranking_hurts_and_reranked_where_it_helps():
    labels = {0: (QUERY, GALLERY), 1: (QUERY, GALLERY)}
    hurt = {"raw": {0: fold(True, True), 1: fold(True, True)}, "reranked": {0: fold(False, False), 1: fold(True, False)}}
    helped = {
        "raw": {0: fold(False, False), 1: fold(False, True)},
        "reranked": {0: fold(True, True), 1: fold(True, True)},
        "reranked_k1-4_k2-3_lambda-0.3": {0: fold(True, False), 1: fold(True, True)},
    }
    choice = choose_fusion([hurt, helped], labels, "distance", 0.5, 0.0)
    assert choice.chosen == ["raw", "reranked"]
    # 4 pooled queries: all right = 1; one right = (1 + 3 * 0.25) / 4; three right = (3 + 0.25) / 4
    assert choice.option_scores[0] == pytest.approx({"raw": 1.0, "reranked": 0.4375})
    assert choice.option_scores[1] == pytest.approx({"raw": 0.4375, "reranked": 1.0, "reranked_k1-4_k2-3_lambda-0.3": 0.8125})
    # A configured source is taken for every model as it is; every option is still scored.
    fixed = choose_fusion([hurt, helped], labels, "distance", 0.5, 0.0, fixed="reranked")
    assert fixed.chosen == ["reranked", "reranked"] and fixed.option_scores == choice.option_scores
    assert fixed.weights == [0.0, 1.0] and fixed.score == pytest.approx(1.0)


def test_an_option_is_taken_over_raw_only_for_a_gain_beyond_its_standard_error():
    labels = {0: (QUERY, GALLERY), 1: (QUERY, GALLERY)}
    # Per query (pooled, folds in order): raw 1, 1, 0.25, 0.25; reranked 1, 1, 1, 0.25. Its gain
    # 0, 0, 0.75, 0 is 0.1875 +- 0.1875 (sd 0.375 / 2): the higher pooled score, not beyond one SE
    # (one query better and none worse is always exactly one SE).
    model = {"raw": {0: fold(True, True), 1: fold(False, False)}, "reranked": {0: fold(True, True), 1: fold(True, False)}}
    kept = choose_fusion([model], labels, "distance", 0.5, 1.0)
    assert kept.chosen == ["raw"] and kept.option_scores[0] == pytest.approx({"raw": 0.625, "reranked": 0.8125})
    test = kept.option_choices[0].tests["reranked"]
    assert (test.mean_gain, test.se, test.queries, test.passed) == (0.1875, pytest.approx(0.1875), 4, False)
    assert choose_fusion([model], labels, "distance", 0.5, 0.0).chosen == ["reranked"]  # the old rule chased it
    # A third fold where reranked wins both queries again: gains 0, 0, 0.75, 0, 0.75, 0.75 over 6
    # queries, 0.375 +- 0.1677 (sd 0.4108): beyond one SE, so reranked is taken.
    labels[2] = (QUERY, GALLERY)
    model["raw"][2], model["reranked"][2] = fold(False, False), fold(True, True)
    taken = choose_fusion([model], labels, "distance", 0.5, 1.0)
    assert taken.chosen == ["reranked"]
    test = taken.option_choices[0].tests["reranked"]
    assert (test.mean_gain, test.se, test.queries) == (0.375, pytest.approx(np.sqrt(6 * 0.375**2 / 5) / np.sqrt(6)), 6)


# Queries x, y against gallery x, y, z, w. Model A is right for x and unsure for y (a near tie puts
# z first), B the other way round; fused half and half, each sure answer outvotes the other's
# near tie and both queries are right (score 1 each, against 1 and 0.25 alone).
MIX_QUERY, MIX_GALLERY = np.array(["x", "y"]), np.array(["x", "y", "z", "w"])
SURE, UNSURE = [0.0, 1.0, 1.0, 1.0], [0.0, 0.01, 1.0, 1.0]
MIX_A = CandidateLists(np.array([[0, 2, 1, 3], [2, 1, 0, 3]]), np.array([SURE, UNSURE], np.float32))
MIX_B = CandidateLists(np.array([[2, 0, 1, 3], [1, 2, 0, 3]]), np.array([UNSURE, SURE], np.float32))


def test_the_tuned_mix_is_submitted_only_for_a_gain_beyond_its_standard_error():
    for folds, submitted in ((1, False), (3, True)):
        labels = {f: (MIX_QUERY, MIX_GALLERY) for f in range(folds)}
        oof = [{"raw": {f: MIX_A for f in labels}}, {"raw": {f: MIX_B for f in labels}}]
        choice = choose_fusion(oof, labels, "distance", 0.5, 1.0)
        assert choice.fusion_weights == [0.5, 0.5] and choice.fusion_score == pytest.approx(1.0)
        # gain over A alone: 0 and 0.75 per fold's two queries: 0.375 +- 0.375 for one fold (exactly
        # one SE, not beyond), +- 0.1677 for three (sd 0.4108 / sqrt(6))
        assert choice.fusion_test.mean_gain == pytest.approx(0.375) and choice.best_single == 0
        assert choice.fusion_test.se == pytest.approx(np.std([0, 0.75] * folds, ddof=1) / np.sqrt(2 * folds))
        assert choice.fusion_test.passed is submitted and choice.single is not submitted
        assert choice.weights == ([0.5, 0.5] if submitted else [1.0, 0.0])
        assert choice.score == pytest.approx(1.0 if submitted else 0.625)
        np.testing.assert_allclose(choice.per_query, [1.0, 1.0] * folds if submitted else [1.0, 0.25] * folds)


def test_scores_pool_every_folds_queries_rather_than_averaging_the_folds():
    gallery = np.array(["x", "y", "x", "y"])
    labels = {0: (np.array(["x"]), gallery), 1: (np.array(["x", "y", "x"]), gallery)}
    # Option 'early': fold 0 (1 query) right, fold 1 (3 queries) all wrong:
    #   pooled (1 + 3 * 0.25) / 4 = 0.4375, mean of folds (1 + 0.25) / 2 = 0.625.
    # Option 'late': fold 0 wrong, fold 1 two of three right:
    #   pooled (0.25 + 1 + 1 + 0.25) / 4 = 0.625, mean of folds (0.25 + 0.75) / 2 = 0.5.
    early = {0: fold(True, labels=labels[0][0]), 1: fold(False, False, False, labels=labels[1][0])}
    late = {0: fold(False, labels=labels[0][0]), 1: fold(True, True, False, labels=labels[1][0])}
    assert pooled_score(early, labels) == pytest.approx(0.4375)
    assert pooled_score(late, labels) == pytest.approx(0.625)
    # A mean of fold scores would prefer 'early'; the pooled score prefers 'late'.
    choice = choose_fusion([{"early": early, "late": late}], labels, "distance", 0.5, 0.0)
    assert choice.chosen == ["late"] and choice.score == pytest.approx(0.625)
    weights, score = tune_weights_on_folds({f: [early[f]] for f in labels}, labels, "distance", 0.5)
    assert weights == [1.0] and score == pytest.approx(0.4375)


def test_a_mix_that_scores_below_the_best_single_model_is_never_submitted():
    # One query x against gallery x, y, x, y. Model A ranks both matches first but barely: its
    # wrong item 1 is at distance 0.502 against 0.500 and 0.501. Model B is sure of item 1 (0)
    # and puts both matches last (1). Min-max normalised over the union, any weight w > 0 on B
    # gives item 1 (1 - w) * 0.004 against w * 1 for item 0: item 1 comes first for w >= 0.004,
    # so every mix on the grid loses top-1 and scores below A alone.
    labels = {0: (np.array(["x"]), GALLERY)}
    a = CandidateLists(np.array([[0, 2, 1, 3]]), np.array([[0.500, 0.501, 0.502, 1.0]], np.float32))
    b = CandidateLists(np.array([[1, 3, 0, 2]]), np.array([[0.0, 0.0, 1.0, 1.0]], np.float32))
    for weight_b in (0.1, 0.5, 0.9):
        mixed = fuse_lists([a, b], [1 - weight_b, weight_b], "distance", 4)
        assert pooled_score({0: mixed}, labels) < 1.0
    choice = choose_fusion([{"raw": {0: a}}, {"raw": {0: b}}], labels, "distance", 0.1, 0.0)
    assert choice.weights == [1.0, 0.0] and choice.single and choice.best_single == 0
    assert choice.score == pytest.approx(1.0)
    submitted = fuse_lists([a, b], choice.weights, "distance", 4)
    np.testing.assert_array_equal(submitted.indices, a.indices)


def test_a_mix_that_only_ties_the_best_single_model_is_not_submitted_either():
    # A alone is right (score 1); B alone ranks item 1 first. Weights (0.1, 0.9), the first
    # grid point after B alone, fuse to item 0: 0.9 * 0.01, item 2: 0.1 * 0.1 + 0.9 * 0.02,
    # item 1: 0.1 * 0.9, item 3: 1 -> 0, 2, 1, 3, also score 1. The single model is kept.
    labels = {0: (np.array(["x"]), GALLERY)}
    a = CandidateLists(np.array([[0, 2, 1, 3]]), np.array([[0.0, 0.1, 0.9, 1.0]], np.float32))
    b = CandidateLists(np.array([[1, 0, 2, 3]]), np.array([[0.0, 0.01, 0.02, 1.0]], np.float32))
    choice = choose_fusion([{"raw": {0: a}}, {"raw": {0: b}}], labels, "distance", 0.1, 0.0)
    assert choice.fusion_weights == pytest.approx([0.1, 0.9]) and choice.fusion_score == pytest.approx(1.0)
    assert choice.weights == [1.0, 0.0] and choice.single and choice.score == pytest.approx(1.0)


def test_a_model_with_all_the_weight_keeps_its_own_lists():
    # Model A lists 2 of 3 items; B lists item 0, which A left out. Fused with weights (1, 0),
    # item 0 would get A's row maximum, tie with A's item 2 and win on the lower index.
    a = CandidateLists(np.array([[1, 2]]), np.array([[0.1, 0.4]], np.float32))
    b = CandidateLists(np.array([[0, 1]]), np.array([[0.2, 0.3]], np.float32))
    for method in ("distance", "rank_voting"):
        fused = fuse_lists([a, b], [1.0, 0.0], method, 3)
        np.testing.assert_array_equal(fused.indices, [[1, 2]])
        np.testing.assert_array_equal(fused.values, a.values)


@pytest.mark.parametrize("method", ["distance", "rank_voting"])
def test_the_submission_scores_at_least_its_best_ingredient_on_random_cases(method):
    rng = np.random.default_rng(3)
    for _ in range(5):
        labels = {f: (rng.choice(list("abc"), 4), np.repeat(list("abc"), 3)) for f in range(2)}
        oof = [
            {
                option: {f: ranked(np.argsort(rng.uniform(size=(4, 9)), axis=1).tolist()) for f in labels}
                for option in ("raw", "reranked")
            }
            for _model in range(3)
        ]
        choice = choose_fusion(oof, labels, method, 0.25, 0.0)
        best_single = max(max(scores.values()) for scores in choice.option_scores)
        submitted = {f: fuse_lists([m[o][f] for m, o in zip(oof, choice.chosen)], choice.weights, method, 9) for f in labels}
        assert choice.score >= best_single
        assert pooled_score(submitted, labels) == pytest.approx(choice.score)


def test_tuning_set_size_counts_every_fold():
    labels = {0: (np.array(["a", "b"]), np.array(["a", "b", "b"])), 3: (np.array(["c"]), np.array(["c", "d"]))}
    size = tuning_set_size(labels)
    assert (size.folds, size.queries, size.gallery, size.identities) == (2, 3, 5, 4)


def test_record_and_table_report_every_option_the_choice_and_the_tuning_set(tmp_path):
    labels = {0: (QUERY, GALLERY)}
    oof = [{"raw": {0: fold(True, False)}, "reranked": {0: fold(True, True)}}, {"raw": {0: fold(False, True)}}]
    choice = choose_fusion(oof, labels, "distance", 0.5, 0.0)
    size = tuning_set_size(labels)
    record = choice_record(choice, ["m1", "m2"], {"raw": None, "reranked": {"k1": 20, "k2": 6, "lambda_value": 0.3}}, size)
    # m1's reranked lists gain 0 and 0.75 on the two queries over raw: 0.375 +- 0.375, above 0 SE
    assert record["options"]["m1"] == {
        "chosen": "reranked", "oof_scores": {"raw": 0.625, "reranked": 1.0}, "default": "raw",
        "tests": {"reranked": {"mean_gain": 0.375, "se": pytest.approx(0.375), "queries": 2, "k": 0.0, "passed": True}},
    }
    assert record["options"]["m2"] == {"chosen": "raw", "oof_scores": {"raw": 0.625}, "default": "raw", "tests": {}}
    assert record["fusion"]["test"]["against"] == "m1 [reranked]" and record["fusion"]["test"]["passed"] is False
    assert record["submitted"] == "m1 alone" and record["oof_score"] == 1.0
    assert record["tuning_set"] == {
        "folds": 1, "held_out_queries": 2, "gallery_images": 4, "identities": 2, "distractors_per_fold": {"0": 0}
    }
    table = choice_table(choice, ["m1", "m2"], size)
    assert "1 folds pooled: 2 held-out queries, 4 gallery images, 2 identities; distractors per fold: 0: 0" in table
    assert "| raw | 0.6250 | 0.6250* |" in table and "| reranked | 1.0000* | – |" in table
    assert "submitted: m1 alone, out-of-fold score 1.0000" in table
    assert "m1: took reranked over raw: +0.3750 +- 0.3750 over 2 queries (k 0: passed)" in table
    assert "fusion against the best single model: +0.0000 +- 0.0000 over 2 queries (k 0: not passed)" in table
    path = tmp_path / "fuse.json"
    path.write_text(json.dumps(record))
    assert chosen_options(path, ["m1", "m2"]) == {"m1": "reranked", "m2": "raw"}
    with pytest.raises(DataError, match=r"fuse.json: no 'options' entry .* model 'm3'"):
        chosen_options(path, ["m3"])
    with pytest.raises(DataError, match="missing"):
        chosen_options(tmp_path / "none.json", ["m1"])


def test_source_auto_needs_tuning_and_the_grid_is_checked():
    default = from_mapping(FuseConfig, {}, "params.yaml", prefix="fuse")
    assert (default.source, default.tune) == ("auto", True)
    with pytest.raises(ConfigError, match="params.yaml: fuse: source 'auto' .* needs tune: true"):
        from_mapping(FuseConfig, {"tune": False}, "params.yaml", prefix="fuse")
    assert from_mapping(FuseConfig, {"tune": False, "source": "raw"}, "params.yaml", prefix="fuse").source == "raw"
    assert (default.min_gain_se, default.tuning_shape) == (1.0, "auto")
    with pytest.raises(ConfigError, match="params.yaml: fuse: min_gain_se must be a finite number >= 0, got -1"):
        from_mapping(FuseConfig, {"min_gain_se": -1}, "params.yaml", prefix="fuse")
    with pytest.raises(ConfigError, match="fuse.tuning_shape"):
        from_mapping(FuseConfig, {"tuning_shape": "one_shot"}, "params.yaml", prefix="fuse")
    with pytest.raises(ConfigError, match="params.yaml: rerank: grid: k1 must be a positive integer, got 0"):
        from_mapping(RerankStageConfig, {"grid": {"k1": [5, 0]}}, "params.yaml", prefix="rerank")
    with pytest.raises(ConfigError, match="unknown key 'rerank.grid.lambda'"):
        from_mapping(RerankStageConfig, {"grid": {"lambda": [0.3]}}, "params.yaml", prefix="rerank")


def test_rerank_options_are_raw_the_configured_setting_then_the_other_grid_settings():
    cfg = RerankStageConfig(k1=3, k2=1, lambda_value=0.3, grid=RerankGrid())  # no grid: the configured setting only
    assert [o.name for o in rerank_options(cfg)] == ["raw", "reranked"]
    grid = from_mapping(RerankStageConfig, {"k1": 3, "k2": 1, "grid": {"k1": [2, 3], "lambda_value": [0.3, 0.5]}}, "p", "rerank")
    options = rerank_options(grid)
    assert [o.name for o in options] == [
        "raw",
        "reranked",
        "reranked_k1-2_k2-1_lambda-0.3",
        "reranked_k1-2_k2-1_lambda-0.5",
        "reranked_k1-3_k2-1_lambda-0.5",
    ]
    assert options[0].settings() is None and options[3].settings() == {"k1": 2, "k2": 1, "lambda_value": 0.5}
    disabled = rerank_options(replace(grid, enabled=False))
    assert [o.name for o in disabled] == ["raw", "reranked"] and disabled[1].settings() is None


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 8))[rng.integers(0, 4, n)] + 0.6 * rng.normal(size=(n, 8))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def feature_set(x: np.ndarray, prefix: str) -> FeatureSet:
    return FeatureSet(x, [f"{prefix}{i}.png" for i in range(len(x))])


def test_rerank_model_writes_every_option_for_the_test_set_and_each_fold():
    test_q, test_g, oof_q, oof_g = clustered(6, 0), clustered(14, 1), clustered(4, 2), clustered(9, 3)
    features = ModelFeatures(
        feature_set(test_q, "q"), feature_set(test_g, "g"), {2: (feature_set(oof_q, "t"), feature_set(oof_g, "u"))}
    )
    cfg = from_mapping(RerankStageConfig, {"k1": 3, "k2": 1, "grid": {"k1": [2, 3], "lambda_value": [0.3, 0.5]}}, "p", "rerank")
    sets = rerank_model(features, cfg)
    names = [o.name for o in rerank_options(cfg)]
    assert sorted(sets) == sorted(names + [f"oof2_{n}" for n in names])
    for prefix, q, g in (("", test_q, test_g), ("oof2_", oof_q, oof_g)):
        cosine = 1 - q @ g.T
        np.testing.assert_array_equal(sets[f"{prefix}raw"].indices, np.argsort(cosine, axis=1, kind="stable"))
        for option in rerank_options(cfg)[1:]:
            expected = re_ranking(
                euclidean_distances(q, g), euclidean_distances(q, q), euclidean_distances(g, g),
                option.k1, option.k2, option.lambda_value,
            )
            np.testing.assert_array_equal(sets[f"{prefix}{option.name}"].indices, np.argsort(expected, axis=1, kind="stable"))
    too_big = from_mapping(RerankStageConfig, {"k1": 3, "k2": 1, "grid": {"k1": [13]}}, "p", "rerank")
    with pytest.raises(DataError, match=r"fold 2 out-of-fold set, option 'reranked_k1-13_k2-1_lambda-0.3': .*k=14"):
        rerank_model(features, too_big)
