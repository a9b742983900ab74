"""The single-shot tuning set: folds.single_shot_split, tuning_set.py, and the rerank and fuse
stages shaping the held-out sets alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.chain.tuning_set import resolve_shape, tuning_features
from pipeline.data.folds import fold_indices, make_folds, single_shot_split
from pipeline.core.errors import DataError
from pipeline.infer.store import FeatureSet, ModelFeatures, save_features
from pipeline.core.io_utils import write_csv
from stages import fuse as fuse_stage
from stages import rerank as rerank_stage

PERSON = Path(__file__).resolve().parents[2] / "shared" / "data" / "person"

# Fold 0 holds out a (cameras c1 c1 c1 c2, query on c1), b (one camera), c (two query-role rows,
# the first on c2, its gallery rows on c2 too) and e (no camera known); d is in fold 1.
HAND = pd.DataFrame(
    [
        ("a0", "a", "c1", 0, "gallery"), ("a1", "a", "c1", 0, "query"), ("a2", "a", "c1", 0, "gallery"),
        ("a3", "a", "c2", 0, "gallery"),
        ("b0", "b", "c1", 0, "gallery"), ("b1", "b", "c1", 0, "query"), ("b2", "b", "c1", 0, "gallery"),
        ("c0", "c", "c2", 0, "query"), ("c1", "c", "c2", 0, "gallery"), ("c2", "c", "c1", 0, "query"),
        ("d0", "d", "c1", 1, "query"), ("d1", "d", "c2", 1, "gallery"),
        ("e0", "e", "", 0, "gallery"), ("e1", "e", "", 0, "query"), ("e2", "e", "c1", 0, "gallery"),
        ("t0", "t", "c1", -1, "train"),
    ],
    columns=["image", "label", "camera", "fold", "role"],
)


def images(rows: np.ndarray) -> list[str]:
    return HAND["image"].to_numpy()[rows].tolist()


def test_single_shot_split_by_hand():
    split = single_shot_split(HAND, 0)
    # a: its c2 image; b: its first gallery row; c: its other query, the only other camera;
    # e: the query's camera is unknown, so its first gallery row
    assert images(split.val_query) == ["a1", "b1", "c0", "e1"]
    assert images(split.val_gallery) == ["a3", "b0", "c2", "e0"]
    np.testing.assert_array_equal(split.train, fold_indices(HAND, 0).train)
    no_cameras = single_shot_split(HAND.drop(columns="camera"), 0)
    assert images(no_cameras.val_gallery) == ["a0", "b0", "c1", "e0"]
    assert images(single_shot_split(HAND, 1).val_gallery) == ["d1"]


def check_single_shot(folds: pd.DataFrame, fold: int) -> int:
    """One query and one gallery image per held-out identity, on another camera wherever one
    of its held-out images has one; returns how many pairs cross cameras."""
    split = single_shot_split(folds, fold)
    held_out = folds[folds["fold"] == fold]
    query, gallery = folds.iloc[split.val_query], folds.iloc[split.val_gallery]
    assert sorted(query["label"]) == sorted(gallery["label"]) == sorted(held_out["label"].unique())
    assert not set(query["image"]) & set(gallery["image"])
    crossing = 0
    for label, pair in pd.concat([query, gallery]).groupby("label"):
        q_camera, g_camera = pair["camera"]
        cameras = set(held_out.loc[held_out["label"] == label, "camera"])
        assert (g_camera != q_camera) == (len(cameras) > 1)
        crossing += g_camera != q_camera
    return crossing


def test_single_shot_split_on_random_folds():
    rng = np.random.default_rng(0)
    labels = np.repeat([f"p{i:02d}" for i in range(40)], rng.integers(2, 9, 40))
    table = pd.DataFrame({"image": [f"{i}.jpg" for i in range(len(labels))], "label": labels,
                          "camera": rng.choice(["c1", "c2", "c3"], len(labels), p=[0.7, 0.2, 0.1])})
    folds = make_folds(table, 4, 1, 0.3)
    assert sum(check_single_shot(folds, fold) for fold in range(4)) > 0


@pytest.mark.skipif(not (PERSON / "train.csv").is_file(), reason=f"the person set is absent ({PERSON})")
def test_single_shot_split_on_the_person_set():
    train = pd.read_csv(PERSON / "train.csv", dtype=str)
    folds = make_folds(train, 5, 0, 0.2)
    crossing = [check_single_shot(folds, fold) for fold in range(5)]
    assert sum(crossing) > 50  # the multi-camera collections (3DPeS, CAVIAR4REID, SARC3D)


def test_auto_reads_only_the_test_sizes():
    assert resolve_shape("auto", 316, 316) == "single_shot"  # VIPeR
    assert resolve_shape("auto", 100, 199) == "single_shot"
    assert resolve_shape("auto", 100, 200) == "folds"
    assert resolve_shape("auto", 260, 1422) == "folds"  # the person set
    assert resolve_shape("auto", 125, 900) == "folds"  # GRID's distractors: set single_shot by hand
    assert resolve_shape("single_shot", 260, 1422) == "single_shot" and resolve_shape("folds", 316, 316) == "folds"


def model_features(test_gallery: int, local: bool = False) -> ModelFeatures:
    """Fold 0's held-out images of HAND (queries, then gallery, as the extract stage stores them),
    each row's first feature its row number + 1; three test queries."""
    split = fold_indices(HAND, 0)

    def feature_set(rows: np.ndarray | range, ids: list[str]) -> FeatureSet:
        rows = np.asarray(rows, np.float32)
        x = np.stack([rows + 1, rows % 3 + 1], axis=1)
        return FeatureSet(x, ids, np.stack([x, -x], axis=1) if local else None)

    oof = {0: tuple(feature_set(rows, images(rows)) for rows in (split.val_query, split.val_gallery))}
    test_ids = [f"g{i}" for i in range(test_gallery)]
    return ModelFeatures(feature_set(range(3), ["q0", "q1", "q2"]), feature_set(range(test_gallery), test_ids),
                         oof, distractors={0: feature_set(range(test_gallery), test_ids)})


def test_tuning_features_keep_the_single_shot_rows():
    features = model_features(test_gallery=3, local=True)  # 3 queries, 3 gallery images: auto is single-shot
    shaped = tuning_features(features, HAND, "auto")
    query, gallery = shaped.oof[0]
    assert query.ids == ["a1", "b1", "c0", "e1"] and gallery.ids == ["a3", "b0", "c2", "e0"]
    row = {image: i for i, image in enumerate(HAND["image"])}
    np.testing.assert_array_equal(gallery.features[:, 0], [row[i] + 1 for i in gallery.ids])
    np.testing.assert_array_equal(gallery.local[:, 1, 0], [-row[i] - 1 for i in gallery.ids])
    assert shaped.query is features.query and shaped.gallery is features.gallery
    assert shaped.distractors is features.distractors
    assert tuning_features(features, HAND, "folds") is features
    crowded = model_features(test_gallery=6)  # 6 >= 2 x 3: auto keeps the folds' shape
    assert tuning_features(crowded, HAND, "auto") is crowded
    with pytest.raises(DataError, match="fold 0: folds.csv holds out no identity with a query-role image"):
        tuning_features(features, HAND.assign(role="gallery"), "single_shot")
    stale = HAND.assign(image=HAND["image"].replace("a3", "a9"))
    with pytest.raises(DataError, match="fold 0: folds.csv holds out image 'a9', which its out-of-fold features lack"):
        tuning_features(features, stale, "single_shot")


def test_rerank_and_fuse_stages_tune_on_the_same_single_shot_set(tmp_path):
    for model in ("m", "n"):
        save_features(tmp_path / "features" / model, model_features(test_gallery=3))
        save_features(tmp_path / "features" / model / "plain", model_features(test_gallery=3))
    write_csv(tmp_path / "folds.csv", HAND)
    params = tmp_path / "params.yaml"
    params.write_text(
        f"folds: {{out: {tmp_path / 'folds.csv'}}}\ntrain: {{models: [m, n], folds: [0]}}\n"
        f"extract: {{out: {tmp_path / 'features'}}}\nrerank: {{out: {tmp_path / 'rerank'}, enabled: false}}\n"
        f"fuse: {{out: {tmp_path / 'fused.npz'}, weights_out: {tmp_path / 'fuse.json'}}}\n",
        encoding="utf-8",
    )
    for model in ("m", "n"):
        rerank_stage.main(["--params", str(params), "--model", model])
    fuse_stage.main(["--params", str(params)])
    record = json.loads((tmp_path / "fuse.json").read_text())
    # four held-out identities, one query and one gallery image each, plus the 3 test-gallery distractors
    assert record["tuning_set"] == {"folds": 1, "held_out_queries": 4, "gallery_images": 4, "identities": 4,
                                    "distractors_per_fold": {"0": 3}, "shape": "single_shot"}
    assert record["options"]["m"]["default"] == "raw" and record["fusion"]["test"]["queries"] == 4
