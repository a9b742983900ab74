"""Features of one model: its fold models averaged on the test set, and each fold model on
its own held-out identities (out-of-fold), which is what the fusion weights are tuned on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.data.cache import open_split
from pipeline.data.folds import fold_indices
from pipeline.data.torch_data import batch_tensor, normalize_batch
from pipeline.infer.foreground import activation_mask
from pipeline.infer.store import FeatureSet, ModelFeatures
from pipeline.infer.tta import average_fold_features, extract_features, scale_batch
from pipeline.models import ReIDModel
from pipeline.train.distributed import resolve_device
from pipeline.train.trained import load_trained_model
from pipeline.sections import ExtractConfig, ImageSize, height_width


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
) -> ModelFeatures:
    """Run every fold checkpoint of one model over the query, gallery and its held-out rows."""
    device = resolve_device(cfg.device, "extract.device")
    query, gallery, train = (open_split(cache_dir, s) for s in ("query", "gallery", "train"))
    train_ids = train.table["image"].tolist()
    per_fold_query: list[np.ndarray] = []
    per_fold_gallery: list[np.ndarray] = []
    oof: dict[int, tuple[FeatureSet, FeatureSet]] = {}
    foreground = None
    for fold, path in sorted(checkpoints.items()):
        model, meta = load_trained_model(path, device=str(device))
        common = dict(input_size=meta["input_size"], mean=meta["mean"], std=meta["std"], cfg=cfg)
        if cfg.suppress_background and cfg.foreground_pictures and foreground is None:  # first fold's model
            foreground = foreground_masks(model, query.images[: cfg.foreground_pictures], meta["input_size"],
                                          meta["mean"], meta["std"], cfg.suppress_threshold)
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
        foreground=foreground,
    )
