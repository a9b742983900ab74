"""extract.oof_distractors downstream: the stored set, the OOF rerank lists over held-out gallery +
distractors, the fuse stage's scoring (a distractor is a miss) and its checks across models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.chain.fuse_choice import tuning_set_size
from pipeline.chain.fuse import fuse_models, oof_folds
from pipeline.chain.oof_fusion import oof_labels
from pipeline.chain.model_inputs import ModelInputs
from pipeline.chain.rerank import model_candidates, rerank_model, rerank_options
from pipeline.core.errors import DataError
from pipeline.infer.store import FeatureSet, ModelFeatures, load_features, save_features
from pipeline.retrieval.candidates import CandidateLists
from pipeline.core.sections import FuseConfig, RerankGrid, RerankStageConfig

RAW_ONLY = rerank_options(RerankStageConfig(enabled=False))  # raw, reranked (no re-ranking)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def with_distractors(distractor_ids: list[str], local: bool = False) -> ModelFeatures:
    rng = np.random.default_rng(0)

    def feature_set(ids: list[str]) -> FeatureSet:
        return FeatureSet(unit(rng.normal(size=(len(ids), 4))), ids, rng.normal(size=(len(ids), 2, 4)).astype(np.float32) if local else None)

    return ModelFeatures(
        feature_set(["q0", "q1"]),
        feature_set(["g0", "g1", "g2"]),
        {0: (feature_set(["a1", "b1"]), feature_set(["a2", "b2"]))},
        distractors={0: feature_set(distractor_ids)},
    )


def test_store_round_trip_keeps_the_distractors_and_old_folders_have_none(tmp_path):
    features = with_distractors(["g0", "g1", "g2"], local=True)
    save_features(tmp_path / "m", features)
    assert sorted(p.name for p in (tmp_path / "m").glob("oof0_distractors*")) == [
        "oof0_distractors.npy", "oof0_distractors.txt", "oof0_distractors_local.npy"
    ]
    loaded = load_features(tmp_path / "m")
    assert loaded.distractors[0].ids == ["g0", "g1", "g2"]
    np.testing.assert_array_equal(loaded.distractors[0].features, features.distractors[0].features)
    np.testing.assert_array_equal(loaded.distractors[0].local, features.distractors[0].local)
    # the one place the tuning gallery is joined: held-out rows 0..1, then distractors 2..4
    gallery, count = loaded.oof_gallery(0)
    assert count == 3 and gallery.ids == ["a2", "b2", "g0", "g1", "g2"]
    np.testing.assert_array_equal(gallery.features[2:], features.distractors[0].features)
    np.testing.assert_array_equal(gallery.local[:2], features.oof[0][1].local)
    # a folder written without the option (or before it existed): no distractors, the plain gallery
    save_features(tmp_path / "old", ModelFeatures(features.query, features.gallery, features.oof))
    old = load_features(tmp_path / "old")
    assert old.distractors == {} and not list((tmp_path / "old").glob("*distractors*"))
    assert old.oof_gallery(0) == (old.oof[0][1], 0)


def test_distractors_must_cover_every_fold_and_match_the_local_features(tmp_path):
    features = with_distractors(["g0"])
    two_folds = {**features.oof, 1: features.oof[0]}
    save_features(tmp_path / "m", ModelFeatures(features.query, features.gallery, two_folds))
    save_features(tmp_path / "d", features)
    (tmp_path / "d" / "oof0_distractors.npy").rename(tmp_path / "m" / "oof0_distractors.npy")
    (tmp_path / "d" / "oof0_distractors.txt").rename(tmp_path / "m" / "oof0_distractors.txt")
    with pytest.raises(DataError, match=rf"{tmp_path / 'm'}: distractors for folds \[0\] but out-of-fold sets for folds \[0, 1\]"):
        load_features(tmp_path / "m")
    plain, with_local = with_distractors(["g0"]), with_distractors(["g0"], local=True)
    mixed = ModelFeatures(plain.query, plain.gallery, plain.oof, distractors=with_local.distractors)
    with pytest.raises(DataError, match="local features"):
        mixed.oof_gallery(0)


def test_oof_lists_index_the_held_out_gallery_then_the_distractors():
    features = with_distractors(["g0", "g1", "g2"])
    # distractor 1 (row 2 + 1 = 3 of the tuning gallery) is held-out query 0 itself
    distractors = features.distractors[0].features.copy()
    distractors[1] = features.oof[0][0].features[0]
    features = ModelFeatures(features.query, features.gallery, features.oof, distractors={0: FeatureSet(distractors, ["g0", "g1", "g2"])})
    cfg = RerankStageConfig(k1=2, k2=1, grid=RerankGrid())
    sets = rerank_model(features, cfg)
    assert sets["oof0_raw"].indices.shape == (2, 5) and sets["oof0_raw"].indices[0, 0] == 3
    assert sets["oof0_raw"].values[0, 0] == pytest.approx(0.0, abs=1e-6)
    # the test lists are those of the test sets alone, whatever the distractors
    plain = model_candidates(features.query, features.gallery, cfg, "test set")
    for name, lists in plain.items():
        np.testing.assert_array_equal(sets[name].indices, lists.indices)
    # without distractors the OOF lists rank the held-out gallery alone, as before the option
    off = rerank_model(ModelFeatures(features.query, features.gallery, features.oof), cfg)
    held_out = model_candidates(*features.oof[0], cfg, "fold 0")
    np.testing.assert_array_equal(off["oof0_raw"].indices, held_out["raw"].indices)


FOLDS = pd.DataFrame({"image": ["a1", "a2", "b1", "b2"], "label": ["a", "a", "b", "b"], "fold": 0, "role": "train"})


def model(name: str, oof: list[list[int]], distractor_ids: list[str] | None) -> ModelInputs:
    """Held-out queries a1, b1; held-out gallery a2, b2; then the distractors (rows 2..)."""
    ones = lambda ids: FeatureSet(np.ones((len(ids), 2), np.float32), ids)  # noqa: E731
    features = ModelFeatures(
        ones(["q0", "q1"]), ones(["g0", "g1", "g2"]), {0: (ones(["a1", "b1"]), ones(["a2", "b2"]))},
        distractors={} if distractor_ids is None else {0: ones(distractor_ids)},
    )
    test = CandidateLists(np.array([[0, 1, 2], [2, 1, 0]]), np.tile(np.arange(3, dtype=np.float32), (2, 1)))
    oof_lists = CandidateLists(np.array(oof), np.tile(np.arange(len(oof[0]), dtype=np.float32), (len(oof), 1)))
    sets = {"raw": test, "reranked": test, "oof0_raw": oof_lists, "oof0_reranked": oof_lists}
    return ModelInputs(sets, Path(f"{name}.npz"), features, Path(f"features/{name}"))


def test_a_distractor_ranked_first_is_a_miss_in_the_tuning_score(tmp_path):
    folds_file = tmp_path / "folds.csv"
    FOLDS.to_csv(folds_file, index=False)
    # a1 -> a2 first (top-1 hit, AP@3 1); b1 -> distractor (row 2) first, b2 second:
    # top-1 miss, AP@3 = (1/2) / min(3, 1) = 0.5. Pooled: 0.5 * (1 + 0) / 2 + 0.5 * (1 + 0.5) / 2 = 0.625,
    # where the same ranks without the distractor (b1 -> b2 first) score 1: top-1 -0.5, mAP -0.25.
    cfg = FuseConfig(tuning_shape="folds")  # auto would take the 2-query, 3-image test set for single-shot
    fused, record = fuse_models(cfg, {"m": model("m", [[0, 2, 1], [2, 1, 0]], ["g0"])}, RAW_ONLY, folds_file, "p.yaml")
    assert record["options"]["m"]["oof_scores"]["raw"] == pytest.approx(0.625)
    assert record["oof_score"] == pytest.approx(0.625)
    assert record["tuning_set"] == {
        "folds": 1, "held_out_queries": 2, "gallery_images": 2, "identities": 2, "distractors_per_fold": {"0": 1},
        "shape": "folds",
    }
    _, plain = fuse_models(cfg, {"m": model("m", [[0, 1], [1, 0]], None)}, RAW_ONLY, folds_file, "p.yaml")
    assert plain["oof_score"] == pytest.approx(1.0) and plain["tuning_set"]["distractors_per_fold"] == {"0": 0}


def test_distractor_labels_match_no_query_whatever_the_labels_are():
    # a held-out identity spelled like the placeholder must still not match a distractor
    folds = pd.DataFrame({"image": ["x", "y"], "label": ["<distractor>", "<distractor>"]})
    query, gallery = oof_labels(folds, {0: (["x"], ["y"])}, {0: 2})[0]
    assert gallery[0] == query[0] and len(gallery) == 3 and not (gallery[1:] == query[0]).any()
    size = tuning_set_size({0: (query, gallery)}, {0: 2})
    assert (size.gallery, size.identities, size.distractors) == (1, 1, {0: 2})


def test_models_must_carry_the_same_distractors():
    right = [[0, 2, 1], [2, 1, 0]]
    with_them, without = model("m", right, ["g0"]), model("n", [[0, 1], [1, 0]], None)
    for models in ({"m": with_them, "n": without}, {"n": without, "m": with_them}):
        with pytest.raises(DataError, match=r"features/n: no out-of-fold distractors for fold 0, but features/m has them"):
            oof_folds(models)
    other = model("o", right, ["g1"])
    with pytest.raises(DataError, match=r"features/o: fold 0's distractors differ from those of features/m"):
        oof_folds({"m": with_them, "o": other})
