"""Which engine extraction takes (pipeline/infer/engine.py), and what each fold is extracted from."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from pipeline.infer.engine import fold_models, load_fold_model, resolve_engine
from pipeline.infer.onnx_engine import OnnxEmbedder
from pipeline.models import ReIDModel
from pipeline.core.sections import ExportConfig, ExtractConfig
from test_export import images, write_checkpoint

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("cfg, device, local, engine, why", [
    (ExtractConfig(), CPU, False, "onnx", "extract.engine: auto on the CPU"),
    (ExtractConfig(engine="onnx"), CPU, False, "onnx", "extract.engine: onnx on the CPU"),
    (ExtractConfig(engine="torch"), CPU, False, "torch", "extract.engine: torch"),
    (ExtractConfig(), CUDA, False, "torch", "extraction runs on cuda"),
    (ExtractConfig(), CPU, True, "torch", "rerank.local_weight > 0"),
    (ExtractConfig(suppress_background=True), CPU, False, "torch", "extract.suppress_background"),
])
def test_resolve_engine(cfg, device, local, engine, why):
    chosen, reason = resolve_engine(cfg, device, local)
    assert chosen == engine and reason.startswith(why)


def test_fold_models_point_at_the_checked_export_or_the_checkpoint(tmp_path, caplog):
    checkpoints = {}
    for fold in (0, 1):
        checkpoints[fold] = tmp_path / f"fold{fold}.pt"
        write_checkpoint(checkpoints[fold], seed=fold)
    onnx_dir = tmp_path / "onnx"
    cfg = ExtractConfig(scales=(1.0, 1.25))
    chosen = fold_models(checkpoints, images(3), cfg, ExportConfig(), onnx_dir, CPU, local=False)
    assert chosen == {0: onnx_dir / "fold0.onnx", 1: onnx_dir / "fold1.onnx"}
    assert json.loads((onnx_dir / "check.json").read_text())["scales"] == [1.0, 1.25]
    assert isinstance(load_fold_model(chosen[0])[0], OnnxEmbedder)
    assert isinstance(load_fold_model(checkpoints[0])[0], ReIDModel)
    with caplog.at_level(logging.INFO, logger="extract"):  # with torch the export goes, its reason stays
        chosen = fold_models(checkpoints, images(3), ExtractConfig(engine="torch"), ExportConfig(), onnx_dir, CPU, False)
    assert chosen == checkpoints and "extracting with PyTorch: extract.engine: torch" in caplog.text
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["check.json"]
    assert json.loads((onnx_dir / "check.json").read_text()) == {"engine": "torch", "reason": "extract.engine: torch"}
