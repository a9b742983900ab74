"""ONNX export of the embedding path: onnxruntime against PyTorch, dynamic axes, extraction
through onnxruntime, and bad input (no checkpoint, a failed check) leaving nothing written."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.errors import DataError
from pipeline.export import folds as export_folds_module
from pipeline.export.folds import export_folds
from pipeline.infer.onnx_engine import load_onnx_model
from pipeline.infer.tta import TTAConfig, extract_features
from pipeline.models import ModelConfig, create_model
from pipeline.core.params import StageParams
from pipeline.core.sections import ExportConfig
from pipeline.train.recipe import Recipe, TrainConfig
from pipeline.train.checkpoint import save_checkpoint

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def write_checkpoint(path: Path, seed: int = 0, pooling: str = "gem") -> None:
    """A training-format checkpoint of a tiny model whose BatchNorm statistics are not the
    defaults: a graph traced in training mode (batch statistics) would then disagree. An
    attention pooling gets a random score, so its softmax is not the uniform start."""
    torch.manual_seed(seed)
    recipe = Recipe(model=ModelConfig(backbone="test_efficientnet", pooling=pooling), train=TrainConfig(epochs=1, input_size=24))
    model = create_model(recipe.model, num_classes=5).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, 24, 24) * 3 - 1)
        if pooling == "attention":
            model.pooling.score.weight.normal_(0.0, 0.5)
    save_checkpoint(path, {
        "format": 1, "recipe": dataclasses.asdict(recipe), "num_classes": 5, "model": model.state_dict(),
        "meta": {"model_name": "tiny", "fold": 0, "input_size": 24, "mean": MEAN, "std": STD},
    })


def images(n: int, size: int = 24, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("export")
    checkpoint = root / "models" / "tiny" / "fold0" / "checkpoints" / "best.pt"
    checkpoint.parent.mkdir(parents=True)
    write_checkpoint(checkpoint)
    report = export_folds({0: checkpoint}, images(9), ExportConfig(batch_size=4), root / "onnx" / "tiny")
    return checkpoint, root / "onnx" / "tiny", report


def test_onnxruntime_agrees_with_pytorch_for_any_batch_and_tta_size(exported):
    checkpoint, out, report = exported
    from pipeline.train.trained import load_trained_model

    model, meta = load_trained_model(checkpoint)
    embedder, onnx_meta = load_onnx_model(out / "fold0.onnx")
    assert onnx_meta == meta  # the normalisation and input size travel with the file
    # batches 1 and 5 differ from the traced 2; side 30 is what a TTA scale of 1.25 feeds
    for shape in [(1, 3, 24, 24), (5, 3, 24, 24), (3, 3, 30, 30)]:
        x = torch.rand(shape) * 4 - 2
        with torch.no_grad():
            expected = model.embed(x)
        assert torch.allclose(embedder.embed(x), expected, atol=1e-4, rtol=0)
    assert report["images"] == 9 and report["folds"]["0"]["max_abs_normalised"] <= 1e-4
    assert json.loads((out / "check.json").read_text()) == report
    assert sorted(p.name for p in out.iterdir()) == ["check.json", "fold0.onnx"]


def test_attention_pooling_exports_for_any_feature_map_size(tmp_path):
    from pipeline.train.trained import load_trained_model

    checkpoint = tmp_path / "models" / "tiny" / "fold0" / "checkpoints" / "best.pt"
    checkpoint.parent.mkdir(parents=True)
    write_checkpoint(checkpoint, pooling="attention")
    report = export_folds({0: checkpoint}, images(5), ExportConfig(batch_size=4), tmp_path / "onnx")
    assert report["folds"]["0"]["max_abs_normalised"] <= 1e-4
    model, _ = load_trained_model(checkpoint)
    embedder, _ = load_onnx_model(tmp_path / "onnx" / "fold0.onnx")
    for shape in [(1, 3, 64, 64), (3, 3, 96, 64)]:  # 2 x 2 and 3 x 2 maps (24 px gives 1 x 1)
        x = torch.rand(shape) * 4 - 2
        with torch.no_grad():
            expected = model.embed(x)
            assert not torch.allclose(expected, model.embed_pooled(model.feature_map(x).mean(dim=(2, 3))))
        assert torch.allclose(embedder.embed(x), expected, atol=1e-4, rtol=0)


def test_extraction_through_onnxruntime_matches_pytorch(exported):
    checkpoint, out, _ = exported
    from pipeline.train.trained import load_trained_model

    model, meta = load_trained_model(checkpoint)
    embedder, _ = load_onnx_model(out / "fold0.onnx")
    cfg = TTAConfig(scales=(1.0, 1.25), rotations=(0, 90), flip=True, batch_size=3)
    common = dict(input_size=meta["input_size"], mean=meta["mean"], std=meta["std"], cfg=cfg)
    ours, theirs = extract_features(model, images(7), **common), extract_features(embedder, images(7), **common)
    assert ours.shape == theirs.shape == (7, model.feature_dim)
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)


def test_a_model_without_checkpoint_is_named_and_nothing_is_written(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(f"train: {{models: [tiny], folds: [0, 1], out: {tmp_path / 'models'}}}\n")
    present = tmp_path / "models" / "tiny" / "fold0" / "checkpoints" / "best.pt"
    present.parent.mkdir(parents=True)
    write_checkpoint(present)
    missing = tmp_path / "models" / "tiny" / "fold1" / "checkpoints" / "best.pt"
    with pytest.raises(DataError, match=f"missing checkpoints .*{missing}"):
        StageParams(params).trained_checkpoints("tiny")


def test_a_failed_check_keeps_the_previous_export_and_leaves_no_temporary(exported, tmp_path, monkeypatch):
    checkpoint, out, _ = exported
    target = tmp_path / "onnx" / "tiny"
    export_folds({0: checkpoint}, images(2), ExportConfig(), target)
    before = (target / "fold0.onnx").read_bytes()
    monkeypatch.setattr(export_folds_module, "compare_embeddings", lambda *a, **k: {"max_abs_normalised": 0.5})
    with pytest.raises(DataError, match=rf"{checkpoint}: onnxruntime and PyTorch embeddings differ by 5.00e-01"):
        export_folds({0: checkpoint, 1: checkpoint}, images(2), ExportConfig(), target)
    assert (target / "fold0.onnx").read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny"]


def test_an_unreadable_onnx_file_is_named(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path / 'none.onnx'}: ONNX model not found"):
        load_onnx_model(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(DataError, match=f"{bad}: not a loadable ONNX model"):
        load_onnx_model(bad)


def test_the_check_covers_every_tta_scale(exported, tmp_path, monkeypatch):
    checkpoint, _, _ = exported
    seen: list[tuple[int, int]] = []
    compare = export_folds_module.compare_embeddings

    def spy(reference, candidate, images, **kwargs):
        original = candidate.embed
        candidate.embed = lambda batch: seen.append(tuple(batch.shape[-2:])) or original(batch)
        return compare(reference, candidate, images, **kwargs)

    monkeypatch.setattr(export_folds_module, "compare_embeddings", spy)
    report = export_folds({0: checkpoint}, images(3), ExportConfig(batch_size=4), tmp_path / "onnx", scales=(1.0, 1.25))
    assert report["scales"] == [1.0, 1.25] and sorted(set(seen)) == [(24, 24), (30, 30)]


def test_an_optional_export_that_fails_its_check_falls_back_to_the_checkpoint(exported, tmp_path, monkeypatch):
    """required=False (extract.engine auto): the failing fold gets no file and says why; the
    other fold is exported as usual."""
    checkpoint, _, _ = exported
    compare = export_folds_module.compare_embeddings
    calls = iter([compare, lambda *a, **k: {"max_abs_normalised": 0.5}])
    monkeypatch.setattr(export_folds_module, "compare_embeddings", lambda *a, **k: next(calls)(*a, **k))
    target = tmp_path / "onnx"
    report = export_folds({0: checkpoint, 1: checkpoint}, images(2), ExportConfig(), target, required=False)
    assert report["folds"]["0"]["engine"] == "onnx" and report["folds"]["0"]["max_abs_normalised"] <= 1e-4
    assert report["folds"]["1"] == {
        "checkpoint": str(checkpoint), "engine": "torch",
        "reason": f"{checkpoint}: onnxruntime and PyTorch embeddings differ by 5.00e-01 > export.atol 1e-04; nothing written",
    }
    assert sorted(p.name for p in target.iterdir()) == ["check.json", "fold0.onnx"]


def test_an_unreadable_export_falls_back_to_the_checkpoint(exported, tmp_path, monkeypatch):
    checkpoint, _, _ = exported
    monkeypatch.setattr(export_folds_module, "export_embedding", lambda model, meta, path, opset: path.write_bytes(b"junk"))
    report = export_folds({0: checkpoint}, images(2), ExportConfig(), tmp_path / "onnx", required=False)
    assert report["folds"]["0"]["engine"] == "torch" and "not a loadable ONNX model" in report["folds"]["0"]["reason"]
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["check.json"]
    with pytest.raises(DataError, match="not a loadable ONNX model"):  # required (extract.engine onnx): it stops
        export_folds({0: checkpoint}, images(2), ExportConfig(), tmp_path / "onnx", required=True)
