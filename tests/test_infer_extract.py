"""extract_model: the fold models averaged on the test set, each fold model on its own held-out rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.data.folds import fold_indices, make_folds
from pipeline.infer import extract
from pipeline.infer.tta import average_fold_features
from pipeline.core.sections import ExtractConfig


class ChannelMeans(torch.nn.Module):
    """Embedding: the input's three channel means plus a fold-specific constant (so folds differ)."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = torch.nn.Parameter(torch.tensor([offset, 0.0, -offset]))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) + self.offset


def write_cache(root: Path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    tables = {
        "train": pd.DataFrame({"image": [f"t{i}.png" for i in range(12)], "label": [f"id{i // 3}" for i in range(12)]}),
        "query": pd.DataFrame({"image": ["q0.png", "q1.png"]}),
        "gallery": pd.DataFrame({"image": ["g0.png", "g1.png", "g2.png"]}),
    }
    for split, table in tables.items():
        np.save(root / f"{split}.npy", rng.integers(0, 256, (len(table), 8, 8, 3), dtype=np.uint8))
        table.to_csv(root / f"{split}.csv", index=False)
    return tables["train"]


def two_fold_models(tmp_path, monkeypatch) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A cache, its 2 folds and two different fold models that extract loads by checkpoint path."""
    train = write_cache(tmp_path)
    folds = make_folds(train, k=2, seed=0, query_fraction=0.34)
    models = {tmp_path / "f0.pt": ChannelMeans(0.5), tmp_path / "f1.pt": ChannelMeans(2.0)}
    meta = {"input_size": 8, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    monkeypatch.setattr(extract, "load_trained_model", lambda path, device: (models[path], meta))
    return train, folds, models


def test_fold_models_are_averaged_on_the_test_set_and_score_their_own_held_out_rows(tmp_path, monkeypatch):
    train, folds, models = two_fold_models(tmp_path, monkeypatch)
    cfg = ExtractConfig(scales=(1.0,), flip=False, device="cpu", oof_distractors=False)
    got = extract.extract_model({0: tmp_path / "f0.pt", 1: tmp_path / "f1.pt"}, tmp_path, folds, cfg)

    def features(model: ChannelMeans, images: np.ndarray) -> np.ndarray:
        x = (torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
        return torch.nn.functional.normalize(model.embed(x), dim=1).detach().numpy()

    cache = {s: np.load(tmp_path / f"{s}.npy") for s in ("train", "query", "gallery")}
    fold_models = list(models.values())
    np.testing.assert_allclose(got.query.features, average_fold_features([features(m, cache["query"]) for m in fold_models]), atol=1e-6)
    np.testing.assert_allclose(got.gallery.features, average_fold_features([features(m, cache["gallery"]) for m in fold_models]), atol=1e-6)
    assert got.query.ids == ["q0.png", "q1.png"] and got.gallery.ids == ["g0.png", "g1.png", "g2.png"]
    assert sorted(got.oof) == [0, 1]
    for fold, model in enumerate(fold_models):
        split = fold_indices(folds, fold)
        query, gallery = got.oof[fold]
        assert query.ids == train["image"].iloc[split.val_query].tolist()
        assert gallery.ids == train["image"].iloc[split.val_gallery].tolist()
        np.testing.assert_allclose(query.features, features(model, cache["train"][split.val_query]), atol=1e-6)


def test_oof_distractors_are_the_test_gallery_through_each_folds_own_model(tmp_path, monkeypatch):
    _, folds, models = two_fold_models(tmp_path, monkeypatch)
    checkpoints = {0: tmp_path / "f0.pt", 1: tmp_path / "f1.pt"}
    off = extract.extract_model(checkpoints, tmp_path, folds, ExtractConfig(scales=(1.0,), flip=False, device="cpu", oof_distractors=False))
    got = extract.extract_model(checkpoints, tmp_path, folds, ExtractConfig(scales=(1.0,), flip=False, device="cpu", oof_distractors=True))
    assert off.distractors == {} and sorted(got.distractors) == [0, 1]
    gallery = np.load(tmp_path / "gallery.npy")
    x = (torch.from_numpy(gallery).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    for fold, model in enumerate(models.values()):
        own = torch.nn.functional.normalize(model.embed(x), dim=1).detach().numpy()
        assert got.distractors[fold].ids == ["g0.png", "g1.png", "g2.png"]
        np.testing.assert_allclose(got.distractors[fold].features, own, atol=1e-6)
    # the two fold models differ, so each fold's distractors are its own model's, not the average
    assert not np.allclose(got.distractors[0].features, got.distractors[1].features, atol=1e-3)
    # everything else is what the option-off run gives
    np.testing.assert_array_equal(got.gallery.features, off.gallery.features)
    np.testing.assert_array_equal(got.oof[1][1].features, off.oof[1][1].features)
