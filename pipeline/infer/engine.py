"""Which engine embeds a model's folds: onnxruntime where an export of them checks out, else PyTorch.

onnxruntime embeds 1.5-3.3x faster than PyTorch on the CPU (benchmarks/results/bench_onnx.md),
so ``extract.engine: auto`` exports each fold model, checks the graph against PyTorch at every
TTA scale, and extracts through it; a fold whose export cannot be checked falls back to its
checkpoint with a logged reason. CUDA, local features and background suppression stay on PyTorch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.export.folds import export_folds
from pipeline.infer.onnx_engine import load_onnx_model
from pipeline.core.io_utils import atomic_dir, write_json
from pipeline.core.sections import ExportConfig, ExtractConfig
from pipeline.train.trained import load_trained_model

log = logging.getLogger("extract")


def resolve_engine(cfg: ExtractConfig, device: torch.device, local: bool) -> tuple[str, str]:
    """``("onnx" | "torch", why)`` for ``cfg.engine`` on ``device``; ``local``: local features wanted.

    ``engine: onnx`` with one of these needs is refused earlier, by the config's own checks.
    """
    if cfg.engine == "torch":
        return "torch", "extract.engine: torch"
    if device.type != "cpu":
        return "torch", f"extraction runs on {device.type}, onnxruntime here on the CPU only"
    if local:
        return "torch", "rerank.local_weight > 0 needs local features, which the ONNX graph does not output"
    if cfg.suppress_background:
        return "torch", "extract.suppress_background needs the feature map, which the ONNX graph does not output"
    return "onnx", f"extract.engine: {cfg.engine} on the CPU"


def load_fold_model(path: Path, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """A fold's embedding model and its meta: an ``.onnx`` file through onnxruntime, else a checkpoint."""
    if Path(path).suffix == ".onnx":
        return load_onnx_model(path, device)
    return load_trained_model(path, device)


def fold_models(
    checkpoints: Mapping[int, Path],
    check_images: np.ndarray,
    cfg: ExtractConfig,
    export: ExportConfig,
    onnx_dir: Path,
    device: torch.device,
    local: bool,
) -> dict[int, Path]:
    """The file each fold is extracted from: its checked ONNX export, or its checkpoint.

    ``onnx_dir`` always ends up holding ``check.json`` (which engine each fold got, and why), so
    a stale export of an earlier run never outlives the run that stopped using it.
    """
    engine, why = resolve_engine(cfg, device, local)
    if engine == "torch":
        with atomic_dir(onnx_dir) as tmp:
            write_json(tmp / "check.json", {"engine": "torch", "reason": why})
        log.info("extracting with PyTorch: %s", why)
        return dict(checkpoints)
    scales = sorted({1.0, *cfg.scales})  # 1.0: the single-view (plain) features use it too
    report = export_folds(checkpoints, check_images, export, onnx_dir, scales, required=cfg.engine == "onnx")
    chosen = {}
    for fold, checkpoint in checkpoints.items():
        entry = report["folds"][str(fold)]
        if entry["engine"] == "onnx":
            log.info("fold %s: onnxruntime (max |onnx - torch| %.2e normalised, scales %s)",
                     fold, entry["max_abs_normalised"], scales)
            chosen[fold] = onnx_dir / f"fold{fold}.onnx"
        else:
            chosen[fold] = checkpoint
    return chosen
