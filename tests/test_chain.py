"""The glue the stages share: candidate lists on disk, the feature store, fusion weights."""

import numpy as np
import pandas as pd
import pytest

from pipeline.retrieval.candidates import CandidateLists, load_candidate_sets, save_candidate_sets
from pipeline.chain.oof_fusion import configured_weights, fuse_lists, oof_labels, tune_weights_on_folds
from pipeline.core.errors import ConfigError, DataError
from pipeline.infer.store import FeatureSet, ModelFeatures, load_features, save_features
from pipeline.core.sections import FuseConfig


def lists_from_distance(dist: np.ndarray) -> CandidateLists:
    order = np.argsort(dist, axis=1, kind="stable")
    return CandidateLists(order, np.take_along_axis(dist, order, axis=1).astype(np.float32))


def test_candidate_lists_round_trip_and_dense_view(tmp_path):
    lists = CandidateLists(np.array([[2, 0], [1, 2]]), np.array([[0.1, 0.5], [0.2, 0.3]], dtype=np.float32))
    save_candidate_sets(tmp_path / "m.npz", {"raw": lists, "oof0_raw": lists})
    loaded = load_candidate_sets(tmp_path / "m.npz")
    assert sorted(loaded) == ["oof0_raw", "raw"]
    np.testing.assert_array_equal(loaded["raw"].indices, lists.indices)
    dense = lists.to_dense(3)
    np.testing.assert_array_equal(dense, np.array([[0.5, np.inf, 0.1], [np.inf, 0.2, 0.3]], dtype=np.float32))
    np.testing.assert_array_equal(lists.ranking(1), [[2], [1]])
    with pytest.raises(DataError, match="only 2 candidates"):
        lists.ranking(3)


def test_missing_or_mismatched_candidate_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="missing"):
        load_candidate_sets(tmp_path / "none.npz")
    with pytest.raises(DataError, match="differ"):
        CandidateLists(np.zeros((2, 3), dtype=np.int64), np.zeros((2, 2), dtype=np.float32))


def test_feature_store_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    features = ModelFeatures(
        query=FeatureSet(rng.normal(size=(2, 4)).astype(np.float32), ["q/a.png", "q/b.png"]),
        gallery=FeatureSet(rng.normal(size=(3, 4)).astype(np.float32), ["g/a.png", "g/b.png", "g/c.png"]),
        oof={1: (FeatureSet(np.ones((1, 4), np.float32), ["t/x.png"]), FeatureSet(np.ones((2, 4), np.float32), ["t/y.png", "t/z.png"]))},
    )
    save_features(tmp_path / "m", features, dtype="float16")
    loaded = load_features(tmp_path / "m")
    assert loaded.query.ids == features.query.ids and loaded.oof[1][1].ids == ["t/y.png", "t/z.png"]
    np.testing.assert_allclose(loaded.gallery.features, features.gallery.features, atol=2e-3)
    (tmp_path / "m" / "query.txt").write_text("only-one\n")
    with pytest.raises(DataError, match="1 ids for 2 rows"):
        load_features(tmp_path / "m")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features_are_refused_naming_the_features_file(tmp_path, bad):
    gallery = np.ones((3, 4), np.float32)
    gallery[2, 1] = bad
    save_features(tmp_path / "m", ModelFeatures(FeatureSet(np.ones((1, 4), np.float32), ["q.png"]), FeatureSet(gallery, ["a", "b", "c"])))
    with pytest.raises(DataError, match=rf"{tmp_path / 'm' / 'gallery.npy'}: row 2 contains NaN or inf"):
        load_features(tmp_path / "m")


def test_configured_weights_default_to_one_and_reject_unknown_models():
    assert configured_weights(FuseConfig(weights={"b": 2.0}), ["a", "b"]) == [1.0, 2.0]
    with pytest.raises(ConfigError, match="fuse.weights names 'c'"):
        configured_weights(FuseConfig(weights={"c": 1.0}), ["a", "b"])
    with pytest.raises(ConfigError, match="all be zero"):
        configured_weights(FuseConfig(weights={"a": 0.0}), ["a"])


def test_tuning_puts_the_weight_on_the_model_that_ranks_correctly():
    rng = np.random.default_rng(0)
    query_labels = np.array(["a", "b", "c", "d"])
    gallery_labels = np.array(["a", "b", "c", "d", "a", "b", "c", "d"])
    perfect = np.where(query_labels[:, None] == gallery_labels[None, :], 0.1, 0.9) + rng.uniform(0, 0.01, (4, 8))
    # The noisy model ranks a wrong item first for every query.
    noisy = rng.uniform(0.3, 0.6, (4, 8))
    noisy[np.arange(4), (np.arange(4) + 1) % 4] = 0.0
    lists = [lists_from_distance(perfect), lists_from_distance(noisy)]
    weights, score = tune_weights_on_folds({0: lists}, {0: (query_labels, gallery_labels)}, "distance", 0.5)
    assert weights[0] > weights[1] and score == pytest.approx(1.0)
    fused = fuse_lists(lists, [1.0, 0.0], "distance", 8)
    assert (gallery_labels[fused.ranking(2)] == query_labels[:, None]).all()


def test_rank_voting_lists_are_rankings_with_rank_as_distance():
    a = CandidateLists(np.array([[0, 1, 2]]), np.array([[0.1, 0.2, 0.3]], np.float32))
    b = CandidateLists(np.array([[1, 0, 2]]), np.array([[0.1, 0.2, 0.3]], np.float32))
    fused = fuse_lists([a, b], [1.0, 2.0], "rank_voting", 3)
    # scores: item 1 = 1/2 + 2 = 2.5, item 0 = 1 + 1 = 2, item 2 = 1/3 + 2/3 = 1
    np.testing.assert_array_equal(fused.indices, [[1, 0, 2]])
    np.testing.assert_array_equal(fused.values, [[0, 1, 2]])


def test_oof_labels_come_from_folds_and_unknown_ids_are_errors():
    folds = pd.DataFrame({"image": ["x", "y"], "label": ["1", "2"]})
    labels = oof_labels(folds, {0: (["x"], ["y", "x"])})
    assert labels[0][0].tolist() == ["1"] and labels[0][1].tolist() == ["2", "1"]
    with pytest.raises(DataError, match="'z'"):
        oof_labels(folds, {0: (["z"], ["y"])})
