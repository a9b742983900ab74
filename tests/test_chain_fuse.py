"""The fuse stage's library call: model checks, untuned and tuned fusion, the fuse.json record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.chain.fuse import fuse_models, oof_folds
from pipeline.chain.model_inputs import ModelInputs
from pipeline.chain.rerank import rerank_options
from pipeline.core.errors import ConfigError, DataError
from pipeline.infer.store import FeatureSet, ModelFeatures
from pipeline.retrieval.candidates import CandidateLists
from pipeline.core.sections import FuseConfig, RerankStageConfig

OPTIONS = rerank_options(RerankStageConfig(enabled=False))  # raw, reranked


def lists(rows: list[list[int]]) -> CandidateLists:
    indices = np.array(rows, dtype=np.int64)
    return CandidateLists(indices, np.tile(np.arange(indices.shape[1], dtype=np.float32), (len(rows), 1)))


def model(name: str, test: list[list[int]], oof: list[list[int]], oof_ids: tuple[list[str], list[str]]) -> ModelInputs:
    """Two queries, three gallery images on the test set; the same lists for raw and reranked."""
    features = ModelFeatures(
        FeatureSet(np.ones((2, 2), np.float32), ["q0", "q1"]),
        FeatureSet(np.ones((3, 2), np.float32), ["g0", "g1", "g2"]),
        {0: (FeatureSet(np.ones((2, 2), np.float32), oof_ids[0]), FeatureSet(np.ones((2, 2), np.float32), oof_ids[1]))},
    )
    sets = {"raw": lists(test), "reranked": lists(test), "oof0_raw": lists(oof), "oof0_reranked": lists(oof)}
    return ModelInputs(sets, Path(f"{name}.npz"), features, Path(f"features/{name}"))


OOF_IDS = (["a1", "b1"], ["a2", "b2"])


@pytest.fixture
def folds_file(tmp_path: Path) -> Path:
    path = tmp_path / "folds.csv"
    pd.DataFrame({"image": ["a1", "a2", "b1", "b2"], "label": ["a", "a", "b", "b"], "fold": 0, "role": "train"}).to_csv(path, index=False)
    return path


def test_untuned_fusion_takes_the_configured_lists_and_weights(folds_file):
    models = {"m": model("m", [[0, 1, 2], [2, 1, 0]], [[0, 1], [1, 0]], OOF_IDS), "n": model("n", [[1, 0, 2], [2, 0, 1]], [[0, 1], [1, 0]], OOF_IDS)}
    fused, record = fuse_models(FuseConfig(tune=False, source="raw", weights={"m": 3.0}), models, OPTIONS, folds_file, "p.yaml")
    # Rank as distance, min-max per row, weights .75 / .25: query 1 -> g2 0, g1 .625, g0 .875
    # (equal weights would tie g1 and g0 at .75 and list g0 first).
    np.testing.assert_array_equal(fused.indices, [[0, 1, 2], [2, 1, 0]])
    assert record["weights"] == {"m": 3.0, "n": 1.0} and record["tuned"] is False and record["oof_score"] is None
    assert record["options"] == {"m": {"chosen": "raw"}, "n": {"chosen": "raw"}}
    with pytest.raises(ConfigError, match="p.yaml: fuse.weights names 'x'"):
        fuse_models(FuseConfig(tune=False, source="raw", weights={"x": 1.0}), models, OPTIONS, folds_file, "p.yaml")


def test_tuned_fusion_submits_the_model_that_is_right_out_of_fold(folds_file):
    # Held-out queries a1, b1 against gallery a2, b2: m ranks both right, n both wrong.
    right, wrong = [[0, 1], [1, 0]], [[1, 0], [0, 1]]
    models = {"m": model("m", [[0, 1, 2], [2, 1, 0]], right, OOF_IDS), "n": model("n", [[1, 0, 2], [0, 2, 1]], wrong, OOF_IDS)}
    # two test queries against three gallery images would make fuse.tuning_shape auto single-shot
    fused, record = fuse_models(FuseConfig(tuning_shape="folds"), models, OPTIONS, folds_file, "p.yaml")
    np.testing.assert_array_equal(fused.indices, models["m"].lists["raw"].indices)
    assert record["weights"] == {"m": 1.0, "n": 0.0} and record["tuned"] is True
    assert record["oof_score"] == pytest.approx(1.0)


def test_models_must_agree_on_images_and_folds(folds_file):
    good = model("m", [[0, 1, 2], [2, 1, 0]], [[0, 1], [1, 0]], OOF_IDS)
    other_ids = model("n", [[0, 1, 2], [2, 1, 0]], [[0, 1], [1, 0]], (["b1", "a1"], ["a2", "b2"]))
    with pytest.raises(DataError, match="fold 0 held-out queries: model 'n' row 0 is 'b1'"):
        oof_folds({"m": good, "n": other_ids})
    no_oof = ModelInputs(good.lists, good.lists_path, ModelFeatures(good.features.query, good.features.gallery), Path("features/n"))
    with pytest.raises(DataError, match=r"features/n: out-of-fold features for folds \[\]"):
        oof_folds({"m": good, "n": no_oof})
    with pytest.raises(DataError, match="holds no out-of-fold features"):
        fuse_models(FuseConfig(), {"n": no_oof}, OPTIONS, folds_file, "p.yaml")
    shifted = ModelFeatures(FeatureSet(good.features.query.features, ["q1", "q0"]), good.features.gallery, good.features.oof)
    with pytest.raises(DataError, match="query images"):
        fuse_models(FuseConfig(), {"m": good, "n": ModelInputs(good.lists, good.lists_path, shifted, Path("x"))}, OPTIONS, folds_file, "p.yaml")
