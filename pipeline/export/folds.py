"""Export every fold model of one trained model and check each against PyTorch."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import DataError
from pipeline.export.check import compare_embeddings
from pipeline.export.onnx_export import export_embedding
from pipeline.infer.onnx_engine import load_onnx_model
from pipeline.core.io_utils import atomic_dir, write_json
from pipeline.core.sections import ExportConfig
from pipeline.train.trained import load_trained_model

log = logging.getLogger("export")


def export_folds(
    checkpoints: Mapping[int, Path],
    images: np.ndarray,
    cfg: ExportConfig,
    out_dir: Path,
    scales: Sequence[float] = (1.0,),
    required: bool = True,
) -> dict[str, Any]:
    """``out_dir/fold<f>.onnx`` for each checkpoint and ``out_dir/check.json``; returns the check.

    Each graph is compared with PyTorch on ``images`` at every TTA scale in ``scales`` (the
    graph's height and width are dynamic). ``required``: a fold that fails to export or to agree
    within ``cfg.atol`` raises, and nothing is written (the folder is swapped in only at the end).
    Otherwise that fold gets no file, its check entry says ``"engine": "torch"`` and why, and
    extraction falls back to its checkpoint.
    """
    if len(images) == 0:
        raise DataError("export: the check images are empty (no query images in the cache)")
    report: dict[str, Any] = {"atol": cfg.atol, "images": int(len(images)), "scales": list(scales), "folds": {}}
    with atomic_dir(out_dir) as tmp:
        for fold, checkpoint in sorted(checkpoints.items()):
            path = tmp / f"fold{fold}.onnx"
            try:
                gaps = _export_checked(checkpoint, images, cfg, path, scales)
            except DataError as error:
                if required:
                    raise
                path.unlink(missing_ok=True)
                log.warning("fold %s: extracting with PyTorch: %s", fold, error)
                report["folds"][str(fold)] = {"checkpoint": str(checkpoint), "engine": "torch", "reason": str(error)}
                continue
            report["folds"][str(fold)] = {"checkpoint": str(checkpoint), "engine": "onnx", **gaps}
        write_json(tmp / "check.json", report)
    return report


def _export_checked(
    checkpoint: Path, images: np.ndarray, cfg: ExportConfig, path: Path, scales: Sequence[float]
) -> dict[str, float]:
    """Export one checkpoint to ``path`` and return its worst gaps; DataError when it cannot be used."""
    model, meta = load_trained_model(checkpoint)
    try:
        export_embedding(model, meta, path, cfg.opset)
    except Exception as error:  # the exporter raises many types for an operator it cannot trace
        raise DataError(f"{checkpoint}: ONNX export failed ({type(error).__name__}: {error})") from error
    embedder, _ = load_onnx_model(path)
    gaps = compare_embeddings(model, embedder, images, input_size=meta["input_size"], mean=meta["mean"],
                              std=meta["std"], batch_size=cfg.batch_size, scales=scales)
    if gaps["max_abs_normalised"] > cfg.atol:
        raise DataError(
            f"{checkpoint}: onnxruntime and PyTorch embeddings differ by "
            f"{gaps['max_abs_normalised']:.2e} > export.atol {cfg.atol:.0e}; nothing written"
        )
    return gaps
