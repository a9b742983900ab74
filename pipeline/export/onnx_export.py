"""Write a trained model's embedding path (``ReIDModel.embed``, no TTA, no head) to ONNX.

The TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) is used: with torch
2.13.0 both it and the torch.export-based exporter (which needs onnxscript) produce graphs that
agree with PyTorch to ~1e-5 here, but the latter took 34-123 s per demo backbone against 2-8 s on the
shared cores (benchmarks/results/bench_onnx.md). Batch, height and width are dynamic axes:
extraction feeds any batch size and TTA scales other than 1.0.

The input normalisation and size travel in the file's metadata, as they do in a checkpoint.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch

from pipeline.data.rescale_pad import height_width
from pipeline.models import ReIDModel

INPUT, OUTPUT = "images", "embeddings"
META_KEY = "retrieval_meta"  # one JSON entry of the ONNX metadata_props


class EmbeddingGraph(torch.nn.Module):
    """The graph to trace: normalised images (B, 3, H, W) -> un-normalised embeddings (B, D)."""

    def __init__(self, model: ReIDModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.embed(images)


def export_embedding(model: ReIDModel, meta: dict[str, Any], path: Path, opset: int) -> None:
    """Trace ``model`` (eval mode) into ``path``, with ``meta`` stored as JSON metadata.

    ``path`` is written in place: callers pass a temporary name (see ``pipeline/export/folds.py``).
    """
    graph = EmbeddingGraph(model).eval()  # the exporter traces in the module's own mode
    height, width = height_width(meta["input_size"])
    example = torch.zeros(2, 3, height, width)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # the deprecation notice of the TorchScript exporter; the choice is explained above
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph, (example,), str(path), input_names=[INPUT], output_names=[OUTPUT],
            dynamic_axes={INPUT: axes, OUTPUT: {0: "batch"}}, opset_version=opset, dynamo=False,
        )
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
