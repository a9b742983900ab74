"""The evaluate stage's library: scoring steps on hand cases, the score table, its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.chain.evaluate import RankListImages, score_models, score_submission, write_scores, write_unscored
from pipeline.chain.score_table import Truth, draw_ranklists, score_centroids, score_lists, score_raw_features, split_cmc
from pipeline.chain.model_inputs import ModelInputs
from pipeline.infer.store import FeatureSet, ModelFeatures
from pipeline.retrieval.candidates import CandidateLists
from pipeline.core.sections import EvaluateConfig

# Two queries (labels a, b), three gallery images (a, b, a).
TRUTH = Truth(pd.DataFrame({"image": ["q0.jpg", "q1.jpg"], "label": ["a", "b"]}),
              pd.DataFrame({"image": ["g0.jpg", "g1.jpg", "g2.jpg"], "label": ["a", "b", "a"]}))
CFG = EvaluateConfig(k=2, cmc_ranks=(1, 2), ranklists=1, tar_fars=(0.5,))


def lists(rows: list[list[int]]) -> CandidateLists:
    indices = np.array(rows, dtype=np.int64)
    return CandidateLists(indices, np.tile(np.arange(indices.shape[1], dtype=np.float32), (len(rows), 1)))


def test_score_lists_hand_case():
    # q0: g1 (miss), g0 (hit), g2 (hit): top-1 0, AP@2 = (1/2) / 2 = .25; q1: g1 first: 1, 1.
    row = score_lists(lists([[1, 0, 2], [1, 0, 2]]), TRUTH, CFG)
    assert row["top1"] == 0.5 and row["map@2"] == pytest.approx(0.625) and row["score"] == pytest.approx(0.5625)
    assert row["cmc@1"] == 0.5 and row["cmc@2"] == 1.0
    np.testing.assert_allclose(row["cmc"], [0.5, 1.0])  # the curve runs to the largest cmc rank


def test_raw_feature_and_centroid_scores_hand_case():
    query = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    gallery = np.array([[1.0, 0.1], [0.1, 1.0], [0.9, -0.2]], np.float32)
    # Every genuine pair is more similar than every impostor pair: all accepted at FAR 0.5.
    assert score_raw_features(query, gallery, TRUTH, CFG) == {"tar@far=0.5": 1.0}
    # Centroids of a (g0, g2) and b (g1): each query's own identity is nearest.
    centroids = score_centroids(query, gallery, TRUTH, CFG)
    assert centroids["top1"] == 1.0 and centroids["map@2"] == 1.0


def test_split_cmc_and_submission_score():
    scalars, curves = split_cmc({"m": {"top1": 1.0, "cmc": [1.0, 1.0]}, "sub": {"top1": 0.5}})
    assert scalars == {"m": {"top1": 1.0}, "sub": {"top1": 0.5}}
    assert list(curves) == ["m"]
    # A submission of one gallery image per line is scored on its top 1 even when k is 2.
    scores = score_submission(np.array([[0], [0]]), 1, TRUTH, CFG)
    assert scores["top1"] == 0.5 and scores["map@1"] == 0.5


def model_inputs() -> ModelInputs:
    features = ModelFeatures(
        FeatureSet(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), ["q0.jpg", "q1.jpg"]),
        FeatureSet(np.array([[1.0, 0.1], [0.1, 1.0], [0.9, -0.2]], np.float32), ["g0.jpg", "g1.jpg", "g2.jpg"]),
    )
    sets = {"raw": lists([[1, 0, 2], [1, 0, 2]]), "reranked": lists([[0, 2, 1], [1, 0, 2]]), "reranked_k1-3": lists([[2, 0, 1], [1, 2, 0]])}
    return ModelInputs(sets, Path("m.npz"), features, Path("features/m"))


def test_score_models_rows_per_model():
    rows = score_models({"m": model_inputs()}, {"m": "reranked_k1-3"}, TRUTH, EvaluateConfig(k=2, cmc_ranks=(1,), centroid=True, tar_fars=(0.5,)))
    assert list(rows) == ["m", "m+rerank", "m chosen: reranked_k1-3", "m centroid"]
    assert rows["m"]["top1"] == 0.5 and rows["m"]["tar@far=0.5"] == 1.0
    assert rows["m+rerank"]["top1"] == 1.0 and rows["m chosen: reranked_k1-3"]["map@2"] == 1.0
    assert "cmc" not in rows["m centroid"]


def test_written_files(tmp_path):
    cfg = EvaluateConfig(out=str(tmp_path / "metrics.json"), cmc=str(tmp_path / "cmc.csv"), report=str(tmp_path / "report"),
                         k=2, cmc_ranks=(1, 2), ranklists=1)
    rows = {"fused": score_lists(lists([[0, 2, 1], [1, 0, 2]]), TRUTH, cfg)}
    images = RankListImages(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((3, 8, 8, 3), np.uint8))
    write_scores(cfg, rows, lists([[0, 2, 1], [1, 0, 2]]), TRUTH, images)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["table"]["fused"]["score"] == 1.0 and metrics["k"] == 2 and metrics["self_matches_excluded"] == 0
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["best1.png", "cmc.png", "worst1.png"]
    assert (tmp_path / "cmc.csv").read_text().startswith("rank,method,cmc")
    assert draw_ranklists(tmp_path, lists([[0, 2, 1], [1, 0, 2]]), TRUTH, images.query, images.gallery, EvaluateConfig(ranklists=0)) == []


def test_without_labels_the_outputs_say_nothing_was_scored(tmp_path):
    cfg = EvaluateConfig(out=str(tmp_path / "metrics.json"), cmc=str(tmp_path / "cmc.csv"), report=str(tmp_path / "report"))
    write_unscored(cfg)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"table": {}, "labels": False}
    assert (tmp_path / "cmc.csv").read_text() == "rank,method,cmc\n"
    assert list((tmp_path / "report").iterdir()) == []
