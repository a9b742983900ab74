"""The extract stage's job for one model: choose the engine (onnxruntime where each fold's export
checks out on the CPU, else PyTorch), then the TTA features of the fold ensemble on the test set
and each fold model's out-of-fold features, and with extract.plain_views the single-view ones."""

from __future__ import annotations

import dataclasses

from pipeline.core.params import StageParams
from pipeline.data.cache import open_split
from pipeline.data.folds import read_folds
from pipeline.infer.engine import fold_models, load_fold_model
from pipeline.infer.extract import extract_model
from pipeline.infer.store import save_features
from pipeline.train.distributed import resolve_device


def run(params: StageParams, model: str) -> None:
    """Write ``params.features(model)`` (and its ``plain/``), and the ONNX folder's check.json."""
    folds = read_folds(params.folds_file())
    local = params.rerank.local_weight > 0  # local features are stored only when retrieval uses them
    params.extract.check_local(params.rerank.local_weight, str(params.path))
    cfg = params.extract
    if cfg.engine == "onnx":  # onnxruntime's CPU provider, whatever extract.device says
        cfg = dataclasses.replace(cfg, device="cpu")
    # the adapt stage's weights for a model of adapt.models, else the train stages'
    checkpoints = params.retrieval_checkpoints(model)
    check_images = open_split(params.cache(), "query").images[: params.export.check_images]
    device = resolve_device(cfg.device, "extract.device")
    models = fold_models(checkpoints, check_images, cfg, params.export, params.onnx(model, 0).parent,
                         device, local)
    out = params.features(model)
    # replaces the whole folder
    save_features(out, extract_model(models, params.cache(), folds, cfg, local=local, load=load_fold_model),
                  dtype=cfg.dtype)
    if cfg.plain_views:
        plain = extract_model(models, params.cache(), folds, cfg.single_view(), local=local, load=load_fold_model)
        save_features(out / "plain", plain, dtype=cfg.dtype)
