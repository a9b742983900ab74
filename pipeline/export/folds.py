"""Export every fold model of one trained model and check each against PyTorch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import DataError
from pipeline.export.check import compare_embeddings
from pipeline.export.onnx_export import export_embedding
from pipeline.infer.onnx_engine import load_onnx_model
from pipeline.io_utils import atomic_dir, write_json
from pipeline.sections import ExportConfig
from pipeline.train.trained import load_trained_model


def export_folds(
    checkpoints: Mapping[int, Path], images: np.ndarray, cfg: ExportConfig, out_dir: Path
) -> dict[str, Any]:
    """``out_dir/fold<f>.onnx`` for each checkpoint and ``out_dir/check.json``; returns the check.

    All files are written into a temporary folder that replaces ``out_dir`` only when every
    fold exported and agreed within ``cfg.atol``: a failure leaves no half export behind.
    """
    if len(images) == 0:
        raise DataError("export: the check images are empty (no query images in the cache)")
    report: dict[str, Any] = {"atol": cfg.atol, "images": int(len(images)), "folds": {}}
    with atomic_dir(out_dir) as tmp:
        for fold, checkpoint in sorted(checkpoints.items()):
            model, meta = load_trained_model(checkpoint)
            path = tmp / f"fold{fold}.onnx"
            export_embedding(model, meta, path, cfg.opset)
            embedder, _ = load_onnx_model(path)
            gaps = compare_embeddings(
                model, embedder, images, input_size=meta["input_size"], mean=meta["mean"],
                std=meta["std"], batch_size=cfg.batch_size,
            )
            if gaps["max_abs_normalised"] > cfg.atol:
                raise DataError(
                    f"{checkpoint}: onnxruntime and PyTorch embeddings differ by "
                    f"{gaps['max_abs_normalised']:.2e} > export.atol {cfg.atol:.0e}; nothing written"
                )
            report["folds"][str(fold)] = {"checkpoint": str(checkpoint), **gaps}
        write_json(tmp / "check.json", report)
    return report
