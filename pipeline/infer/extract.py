"""Features of one model: its fold models averaged on the test set, and each fold model on
its own held-out identities (out-of-fold), which is what the fusion weights are tuned on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.data.cache import open_split
from pipeline.data.folds import fold_indices
from pipeline.infer.store import FeatureSet, ModelFeatures
from pipeline.infer.tta import average_fold_features, extract_features
from pipeline.train.distributed import resolve_device
from pipeline.train.trained import load_trained_model
from pipeline.sections import TTAConfig


def extract_model(
    checkpoints: Mapping[int, Path],
    cache_dir: Path,
    folds: pd.DataFrame,
    cfg: TTAConfig,
    load: Callable[[Path, str], tuple[torch.nn.Module, dict[str, Any]]] | None = None,
) -> ModelFeatures:
    """Run every fold model of one model over the query, gallery and its held-out rows.

    ``load(path, device)`` gives a fold's model (anything with ``embed``) and its meta: a
    checkpoint's by default, an ONNX file's through onnxruntime with ``extract.engine: onnx``.
    """
    load = load or load_trained_model
    device = resolve_device(cfg.device, "extract.device")
    query, gallery, train = (open_split(cache_dir, s) for s in ("query", "gallery", "train"))
    train_ids = train.table["image"].tolist()
    per_fold_query: list[np.ndarray] = []
    per_fold_gallery: list[np.ndarray] = []
    oof: dict[int, tuple[FeatureSet, FeatureSet]] = {}
    for fold, path in sorted(checkpoints.items()):
        model, meta = load(path, str(device))
        common = dict(input_size=meta["input_size"], mean=meta["mean"], std=meta["std"], cfg=cfg)
        per_fold_query.append(extract_features(model, query.images, description=f"fold {fold} query", **common))
        per_fold_gallery.append(extract_features(model, gallery.images, description=f"fold {fold} gallery", **common))
        split = fold_indices(folds, fold)
        oof[fold] = tuple(  # type: ignore[assignment]
            FeatureSet(
                extract_features(model, train.images[rows], description=f"fold {fold} held-out {role}", **common),
                [train_ids[i] for i in rows],
            )
            for role, rows in (("query", split.val_query), ("gallery", split.val_gallery))
        )
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return ModelFeatures(
        query=FeatureSet(average_fold_features(per_fold_query), query.table["image"].tolist()),
        gallery=FeatureSet(average_fold_features(per_fold_gallery), gallery.table["image"].tolist()),
        oof=oof,
    )
