"""Features of one model: its fold models averaged on the test set, and each fold model on
its own held-out identities (out-of-fold), which is what the fusion weights are tuned on."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.data.cache import open_split
from pipeline.data.folds import fold_indices
from pipeline.data.torch_data import batch_tensor, normalize_batch
from pipeline.infer.foreground import activation_mask
from pipeline.infer.store import FeatureSet, ModelFeatures
from pipeline.core.errors import ConfigError
from pipeline.infer.tta import average_fold_features, extract_parts, scale_batch
from pipeline.models import ReIDModel
from pipeline.train.distributed import resolve_device
from pipeline.train.trained import load_trained_model
from pipeline.core.sections import ExtractConfig, ImageSize, height_width


@torch.inference_mode()
def foreground_masks(model: ReIDModel, images: np.ndarray, input_size: ImageSize, mean: Sequence[float],
                     std: Sequence[float], threshold: float) -> np.ndarray:
    """(N, h, w) bool activation masks of uint8 images (N, H, W, 3), plain view, for the report."""
    model.eval()
    batch = normalize_batch(batch_tensor(images).to(next(model.parameters()).device), mean, std)
    feature_map = model.feature_map(scale_batch(batch, height_width(input_size), 1.0))
    return activation_mask(feature_map, threshold).cpu().numpy()


def extract_model(
    checkpoints: Mapping[int, Path],
    cache_dir: Path,
    folds: pd.DataFrame,
    cfg: ExtractConfig,
    local: bool = False,
    load: Callable[[Path, str], tuple[torch.nn.Module, dict[str, Any]]] | None = None,
) -> ModelFeatures:
    """Run every fold model of one model over the query, gallery and its held-out rows;
    with ``local``, the AlignedReID local features too (the recipe must have a local branch);
    with ``cfg.oof_distractors``, each fold model's test-gallery features as its fold's distractors.

    ``load(path, device)`` gives a fold's model (anything with ``embed``) and its meta: a
    checkpoint's by default, an ONNX file's through onnxruntime (``pipeline/infer/engine.py``: ``extract.engine`` auto or onnx).
    """
    load = load or load_trained_model
    device = resolve_device(cfg.device, "extract.device")
    query, gallery, train = (open_split(cache_dir, s) for s in ("query", "gallery", "train"))
    train_ids = train.table["image"].tolist()
    per_fold: dict[str, list[tuple[np.ndarray, np.ndarray | None]]] = {"query": [], "gallery": []}
    oof: dict[int, tuple[FeatureSet, FeatureSet]] = {}
    distractors: dict[int, FeatureSet] = {}
    gallery_ids = gallery.table["image"].tolist()
    foreground = None
    for fold, path in sorted(checkpoints.items()):
        model, meta = load(path, str(device))
        if local and model.local is None:
            raise ConfigError(
                f"{path}: rerank.local_weight > 0 needs local features, but this model has no "
                "local branch (its recipe's model.local_stripes is 0)"
            )
        if cfg.suppress_background and cfg.foreground_pictures and foreground is None:  # first fold's model
            foreground = foreground_masks(model, query.images[: cfg.foreground_pictures], meta["input_size"],
                                          meta["mean"], meta["std"], cfg.suppress_threshold)
        common = dict(input_size=meta["input_size"], mean=meta["mean"], std=meta["std"], cfg=cfg, local=local)
        for role, split_set in (("query", query), ("gallery", gallery)):
            per_fold[role].append(extract_parts(model, split_set.images, description=f"fold {fold} {role}", **common))
        if cfg.oof_distractors:  # this fold model's own test-gallery features, before the fold average
            distractors[fold] = _feature_set(per_fold["gallery"][-1], gallery_ids)
        split = fold_indices(folds, fold)
        oof[fold] = tuple(  # type: ignore[assignment]
            _feature_set(
                extract_parts(model, train.images[rows], description=f"fold {fold} held-out {role}", **common),
                [train_ids[i] for i in rows],
            )
            for role, rows in (("query", split.val_query), ("gallery", split.val_gallery))
        )
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    query_set, gallery_set = (
        _feature_set(_average_folds(per_fold[role]), table["image"].tolist())
        for role, table in (("query", query.table), ("gallery", gallery.table))
    )
    return ModelFeatures(query=query_set, gallery=gallery_set, oof=oof, foreground=foreground, distractors=distractors)


def _feature_set(parts: tuple[np.ndarray, np.ndarray | None], ids: list[str]) -> FeatureSet:
    return FeatureSet(parts[0], ids, parts[1])


def _average_folds(per_fold: list[tuple[np.ndarray, np.ndarray | None]]) -> tuple[np.ndarray, np.ndarray | None]:
    """The fold ensemble of the global features, and of the local ones where present."""
    local = [part[1] for part in per_fold if part[1] is not None]
    return average_fold_features([part[0] for part in per_fold]), average_fold_features(local) if local else None
