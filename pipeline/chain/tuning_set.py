"""The out-of-fold tuning set in the test's shape (``fuse.tuning_shape``).

The extract stage stores every held-out image of a fold (folds.csv roles: about
``folds.query_fraction`` of each identity queries, the rest gallery). A single-shot test
gallery (one image per identity: VIPeR, 316 queries against 316 images) gives each query one
true match, so re-ranking's k-reciprocal sets there are nearly empty, while a held-out identity
with four gallery images makes them rich: tuned on the folds' shape, the choice credits
re-ranking for neighbourhoods the test does not have. ``single_shot`` keeps one query and one
gallery image per held-out identity (folds.single_shot_split, other camera first), the shape of
such a test. The rerank stage (which ranks the out-of-fold sets) and the fuse stage (which
labels and scores them) both shape the features here, from the same folds.csv.

``auto`` reads no labels, only the test's sizes: single-shot when the test gallery holds fewer
than ``SINGLE_SHOT_RATIO`` images per query. With one query per identity (the usual test
design) that ratio is the mean number of gallery images per query identity, or fewer where the
gallery holds identities no query asks for; below two, most queries have a single true match.
Above it sizes cannot tell many true matches from many distractors (GRID: 125 queries, one
true match each among 900 images), so ``auto`` keeps the folds' shape there: set
``single_shot`` by hand for a single-shot test with distractors.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.data.folds import single_shot_split
from pipeline.core.errors import ConfigError, DataError
from pipeline.infer.store import FeatureSet, ModelFeatures

FOLDS, SINGLE_SHOT, AUTO = "folds", "single_shot", "auto"
SINGLE_SHOT_RATIO = 2.0  # auto: single-shot below this many test gallery images per test query

Shape = Literal["folds", "single_shot"]


def resolve_shape(shape: str, queries: int, gallery: int) -> Shape:
    """``shape``, with ``auto`` decided from the test's query and gallery counts (no labels)."""
    if shape == AUTO:
        return SINGLE_SHOT if gallery < SINGLE_SHOT_RATIO * queries else FOLDS
    if shape not in (FOLDS, SINGLE_SHOT):
        raise ConfigError(f"fuse.tuning_shape must be auto, folds or single_shot, got {shape!r}")
    return shape  # type: ignore[return-value]


def feature_shape(features: ModelFeatures, shape: str) -> Shape:
    """``resolve_shape`` on the sizes of the test sets ``features`` holds."""
    return resolve_shape(shape, len(features.query.ids), len(features.gallery.ids))


def tuning_features(features: ModelFeatures, folds: pd.DataFrame, shape: str) -> ModelFeatures:
    """``features`` with each fold's held-out sets in the tuning shape (unchanged for ``folds``);
    the test sets and the distractors (extract.oof_distractors) are kept as they are."""
    if feature_shape(features, shape) == FOLDS:
        return features
    images = folds["image"].astype(str).to_numpy()
    oof = {}
    for fold, (query, gallery) in features.oof.items():
        held_out = query.followed_by(gallery)
        row_of = {image: row for row, image in enumerate(held_out.ids)}
        split = single_shot_split(folds, fold)
        if not len(split.val_query):
            raise DataError(f"fold {fold}: folds.csv holds out no identity with a query-role image and a second image")
        oof[fold] = tuple(_rows(held_out, row_of, images[rows], fold) for rows in (split.val_query, split.val_gallery))
    return replace(features, oof=oof)  # type: ignore[arg-type]


def _rows(held_out: FeatureSet, row_of: dict[str, int], images: np.ndarray, fold: int) -> FeatureSet:
    """The rows of ``held_out`` for ``images``, in that order."""
    try:
        rows = np.array([row_of[image] for image in images], dtype=np.int64)
    except KeyError as error:
        raise DataError(
            f"fold {fold}: folds.csv holds out image {error}, which its out-of-fold features lack (rerun the extract stage)"
        ) from error
    local = None if held_out.local is None else held_out.local[rows]
    return FeatureSet(held_out.features[rows], [held_out.ids[row] for row in rows], local)
