"""On-disk format of one model's features: plain ``.npy`` arrays with ``.txt`` id lists.

    <dir>/query.npy, query.txt          test queries (rows in query.csv order)
    <dir>/gallery.npy, gallery.txt      test gallery
    <dir>/oof<F>_query.npy, ...         fold F's held-out identities, for tuning the fusion
    <dir>/oof<F>_distractors.npy, .txt  with extract.oof_distractors: the test gallery through fold
                                        F's own model, appended to fold F's held-out gallery when
                                        tuning (``oof_gallery``); never a correct match
    <dir>/<set>_local.npy               AlignedReID local features (N, stripes, D) of a set, only
                                        when retrieval uses them (rerank.local_weight > 0)
    <dir>/foreground_masks.npy          with background suppression: the first queries' masks (report)

Ids are the ``image`` paths of the CSVs, one per line. Nothing is pickled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.errors import DataError
from pipeline.core.io_utils import atomic_dir
from pipeline.retrieval.validate import check_features

_OOF_FILE = re.compile(r"^oof(\d+)_query\.npy$")


def oof_name(fold: int, name: str) -> str:
    """The one spelling of a fold's out-of-fold set: features ('query', 'gallery', 'distractors')
    and candidate lists (an option's name) alike, e.g. 'oof0_query', 'oof1_reranked'."""
    return f"oof{fold}_{name}"

_FOREGROUND = "foreground_masks.npy"


@dataclass(frozen=True)
class FeatureSet:
    """Features (N, D) with their image ids, and optionally local features (N, stripes, D)."""

    features: np.ndarray
    ids: list[str]
    local: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or len(self.features) != len(self.ids):
            raise DataError(
                f"features of shape {self.features.shape} do not match {len(self.ids)} ids"
            )
        if self.local is not None and (self.local.ndim != 3 or len(self.local) != len(self.ids)):
            raise DataError(f"local features of shape {self.local.shape} do not match {len(self.ids)} ids")

    def followed_by(self, other: FeatureSet) -> FeatureSet:
        """This set's rows, then ``other``'s (local features too, which both must have or lack)."""
        if (self.local is None) != (other.local is None):
            raise DataError("cannot append a set with local features to one without (rerun the extract stage)")
        local = None if self.local is None else np.concatenate([self.local, other.local])  # type: ignore[list-item]
        return FeatureSet(np.concatenate([self.features, other.features]), self.ids + other.ids, local)


@dataclass(frozen=True)
class ModelFeatures:
    query: FeatureSet
    gallery: FeatureSet
    oof: dict[int, tuple[FeatureSet, FeatureSet]] = field(default_factory=dict)
    foreground: np.ndarray | None = None  # (n, h, w) bool activation masks of the first n queries
    # per fold F: the test gallery through fold F's model (extract.oof_distractors), for every fold or none
    distractors: dict[int, FeatureSet] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.distractors and sorted(self.distractors) != sorted(self.oof):
            raise DataError(
                f"distractors for folds {sorted(self.distractors)} but out-of-fold sets for folds {sorted(self.oof)}"
            )

    def oof_gallery(self, fold: int) -> tuple[FeatureSet, int]:
        """Fold ``fold``'s tuning gallery and how many distractors end it: the held-out gallery
        (rows 0..n-1) followed by the fold's distractors (rows n..n+m-1), m = 0 without them.

        The one place the two are joined, so the rerank lists and the fuse stage's labels
        index the same rows."""
        gallery = self.oof[fold][1]
        if fold not in self.distractors:
            return gallery, 0
        return gallery.followed_by(self.distractors[fold]), self.distractor_count(fold)

    def distractor_count(self, fold: int) -> int:
        """How many distractors fold ``fold``'s tuning gallery ends with (0 without the option)."""
        return len(self.distractors[fold].ids) if fold in self.distractors else 0


def _sets(features: ModelFeatures) -> dict[str, FeatureSet]:
    named = {"query": features.query, "gallery": features.gallery}
    for fold, (query, gallery) in sorted(features.oof.items()):
        named[oof_name(fold, "query")] = query
        named[oof_name(fold, "gallery")] = gallery
    for fold, distractors in sorted(features.distractors.items()):
        named[oof_name(fold, "distractors")] = distractors
    return named


def save_features(directory: str | Path, features: ModelFeatures, dtype: str = "float32") -> None:
    """Write every set of ``features`` into ``directory`` at once (atomic folder swap)."""
    with atomic_dir(directory) as tmp:
        for name, feature_set in _sets(features).items():
            np.save(tmp / f"{name}.npy", feature_set.features.astype(dtype), allow_pickle=False)
            if feature_set.local is not None:
                np.save(tmp / f"{name}_local.npy", feature_set.local.astype(dtype), allow_pickle=False)
            (tmp / f"{name}.txt").write_text("\n".join(feature_set.ids) + "\n", encoding="utf-8")
        if features.foreground is not None:
            np.save(tmp / _FOREGROUND, features.foreground.astype(bool), allow_pickle=False)


def _load_set(directory: Path, name: str) -> FeatureSet:
    array_path, ids_path = directory / f"{name}.npy", directory / f"{name}.txt"
    for path in (array_path, ids_path):
        if not path.is_file():
            raise DataError(f"{path}: missing (run the extract stage first)")
    # Checked here, where the file is known: NaN or inf found later could only name "query".
    array = check_features(str(array_path), np.load(array_path, allow_pickle=False)).astype(np.float32)
    ids = ids_path.read_text(encoding="utf-8").splitlines()
    if len(ids) != len(array):
        raise DataError(f"{ids_path}: {len(ids)} ids for {len(array)} rows in {array_path.name}")
    local_path = directory / f"{name}_local.npy"
    local = None
    if local_path.is_file():
        local = np.load(local_path, allow_pickle=False).astype(np.float32)
        if local.ndim != 3 or len(local) != len(array) or not np.isfinite(local).all():
            raise DataError(f"{local_path}: expected finite (N={len(array)}, stripes, D) local features, got {local.shape}")
    return FeatureSet(array, ids, local)


def load_features(directory: str | Path) -> ModelFeatures:
    directory = Path(directory)
    masks = directory / _FOREGROUND
    folds = sorted(int(m.group(1)) for p in directory.glob("oof*_query.npy") if (m := _OOF_FILE.match(p.name)))
    query, gallery = _load_set(directory, "query"), _load_set(directory, "gallery")
    oof = {f: (_load_set(directory, oof_name(f, "query")), _load_set(directory, oof_name(f, "gallery"))) for f in folds}
    names = {f: oof_name(f, "distractors") for f in folds}
    distractors = {f: _load_set(directory, name) for f, name in names.items() if (directory / f"{name}.npy").is_file()}
    foreground = np.load(masks, allow_pickle=False) if masks.is_file() else None
    try:
        return ModelFeatures(query, gallery, oof, foreground, distractors)
    except DataError as error:  # the sets disagree with each other: name the folder they came from
        raise DataError(f"{directory}: {error} (rerun the extract stage)") from error
