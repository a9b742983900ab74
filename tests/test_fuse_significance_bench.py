"""benchmarks/fuse_significance.py: its single-shot test gallery, and a run on a tiny synthetic chain."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.folds import fold_indices, make_folds
from pipeline.infer.store import FeatureSet, ModelFeatures, save_features
from pipeline.core.io_utils import write_csv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import fuse_significance  # noqa: E402


def test_the_single_shot_gallery_keeps_one_image_per_identity_on_another_camera_first():
    query = pd.DataFrame({"image": ["qa", "qb", "qc"], "label": ["a", "b", "c"], "camera": ["1", "1", "2"]})
    gallery = pd.DataFrame({
        "image": ["a1", "a2", "a3", "b1", "b2", "c1", "d1", "d2"],
        "label": ["a", "a", "a", "b", "b", "c", "d", "d"],
        "camera": ["1", "2", "1", "1", "1", "2", "1", "3"],
    })
    for seed in range(5):
        kept = gallery.iloc[fuse_significance.single_shot_gallery(query, gallery, seed)]
        assert sorted(kept["label"]) == ["a", "b", "c", "d"]
        chosen = dict(zip(kept["label"], kept["image"]))
        # a: its only image on another camera; b, c: the query's camera is all there is; d: no query
        assert chosen["a"] == "a2" and chosen["b"] in ("b1", "b2") and chosen["c"] == "c1" and chosen["d"] in ("d1", "d2")


def test_the_benchmark_runs_on_a_tiny_synthetic_chain(tmp_path):
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"image": [f"t{i}" for i in range(48)], "label": [f"p{i // 4}" for i in range(48)],
                          "camera": [str(i % 2) for i in range(48)]})
    test = pd.DataFrame({"image": [f"s{i}" for i in range(24)], "label": [f"x{i // 4}" for i in range(24)],
                         "camera": [str(i % 2) for i in range(24)]})
    query, gallery = test.iloc[::4].reset_index(drop=True), test.drop(index=test.index[::4]).reset_index(drop=True)
    folds = make_folds(train, 2, 0, 0.25)
    centre = {label: rng.normal(size=8) for label in pd.concat([train, test])["label"].unique()}

    def embed(table: pd.DataFrame, noise: float) -> FeatureSet:
        x = np.stack([centre[label] for label in table["label"]]) + noise * rng.normal(size=(len(table), 8))
        return FeatureSet(x.astype(np.float32), table["image"].tolist())

    for model, noise in (("m", 0.5), ("n", 1.0)):
        for where in (tmp_path / "features" / model, tmp_path / "features" / model / "plain"):
            oof = {f: tuple(embed(folds.iloc[rows], noise) for rows in (s.val_query, s.val_gallery))
                   for f in (0, 1) for s in [fold_indices(folds, f)]}
            save_features(where, ModelFeatures(embed(query, noise), embed(gallery, noise), oof,
                                               distractors={f: embed(gallery, noise) for f in (0, 1)}))
    write_csv(tmp_path / "folds.csv", folds)
    (tmp_path / "cache").mkdir()
    write_csv(tmp_path / "cache" / "query.csv", query)
    write_csv(tmp_path / "cache" / "gallery.csv", gallery)
    (tmp_path / "params.yaml").write_text(
        "preprocess: {out: cache}\nfolds: {out: folds.csv}\ntrain: {models: [m, n], folds: [0, 1]}\n"
        "extract: {out: features}\nrerank: {k1: 3, k2: 1, candidates: 50, grid: {k1: [], k2: [], lambda_value: []}}\nfuse: {}\n",
        encoding="utf-8",
    )
    out = tmp_path / "report.md"
    fuse_significance.main(["--repo", str(tmp_path), "--note", "tiny", "--out", str(out)])
    report = out.read_text()
    # 6 queries against 18 images, then against the 6 of the single-shot version
    assert "Test set: 6 queries, 18 gallery images of 6 identities; `fuse.tuning_shape: auto` would take `folds`" in report
    assert "Test set: 6 queries, 6 gallery images of 6 identities; `fuse.tuning_shape: auto` would take `single_shot`" in report
    assert "6 of 6 from another camera" in report
    rows = [line for line in report.splitlines() if line.startswith(("| folds |", "| single_shot |"))]
    assert len(rows) == 8 and all(row.split(" | ")[1] in ("0", "1") for row in rows)
