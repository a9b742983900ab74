"""The embedding model of an exported ONNX file, run by onnxruntime on the CPU.

``OnnxEmbedder`` offers the one method TTA extraction calls, ``embed``, so ``extract_features``
runs the same views through onnxruntime as through PyTorch (``extract.engine`` auto or onnx, pipeline/infer/engine.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from pipeline.core.errors import DataError
from pipeline.export.onnx_export import INPUT, META_KEY


class OnnxEmbedder(torch.nn.Module):
    """A parameter-free module whose ``embed`` runs an onnxruntime session (CPU tensors in and out).

    A Module so that ``extract_features`` can call ``eval()`` on it like on a ReIDModel.
    """

    def __init__(self, session: ort.InferenceSession) -> None:
        super().__init__()
        self.session = session

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {INPUT: array})[0])


def open_session(path: str | Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU session of ``path``; ``threads`` 0 takes torch's thread count (train.threads sets it)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for a bad file
        if not Path(path).is_file():
            raise DataError(f"{path}: ONNX model not found (the extract stage exports it)") from error
        raise DataError(f"{path}: not a loadable ONNX model ({error})") from error


def load_onnx_model(path: str | Path, device: str = "cpu") -> tuple[OnnxEmbedder, dict[str, Any]]:
    """The embedder of ``path`` and the meta the export stored (``input_size``, ``mean``, ``std``, ...).

    ``device`` is accepted for the loader signature extraction shares with PyTorch checkpoints;
    onnxruntime runs on the CPU here.
    """
    if device != "cpu":
        raise DataError(f"{path}: extract.engine onnx runs on the CPU; set extract.device: cpu")
    session = open_session(path)
    meta_json = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    if meta_json is None:
        raise DataError(f"{path}: no '{META_KEY}' metadata (not written by pipeline/export)")
    return OnnxEmbedder(session), json.loads(meta_json)
