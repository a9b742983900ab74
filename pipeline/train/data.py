"""One fold's training data: the cached training images and the rows of each role."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.cache import open_split
from pipeline.data.folds import fold_indices, read_folds
from pipeline.core.errors import ConfigError, DataError


@dataclass(frozen=True)
class FoldData:
    images: np.ndarray  # (N, S, S, 3) uint8, the train cache
    labels: np.ndarray  # (N,) identity labels (strings), as folds.csv has them (merges applied)
    train_rows: np.ndarray
    query_rows: np.ndarray  # held-out identities; empty = no validation
    gallery_rows: np.ndarray


def load_fold(cache_dir: str | Path, folds_path: str | Path, fold: int) -> FoldData:
    """The train cache with the rows that train on, and validate, fold ``fold``."""
    cached = open_split(Path(cache_dir), "train")
    folds = read_folds(folds_path)
    if len(folds) != len(cached.table) or (folds["image"].to_numpy() != cached.table["image"].to_numpy()).any():
        raise DataError(f"{folds_path}: rows do not match {cache_dir}/train.csv (rerun the folds stage)")
    try:
        split = fold_indices(folds, fold)
    except ValueError as error:
        raise ConfigError(f"fold {fold}: {error}") from error
    return FoldData(
        images=cached.images,
        labels=folds["label"].astype(str).to_numpy(),  # with folds.label_merge applied
        train_rows=split.train,
        query_rows=split.val_query,
        gallery_rows=split.val_gallery,
    )
