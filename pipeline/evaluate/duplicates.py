"""Candidate duplicate identities from a trained classifier (DIGIX 2020 retrieval, 2nd place).

Two training labels that name the same product pull their classifier rows (the class
weights of an ArcFace, AM-Softmax or linear head) towards the same embeddings, so their
rows end up close in cosine similarity. The rows are clustered with scikit-learn's
agglomerative clustering at a cosine-similarity threshold; every cluster of two or more
labels is a candidate group for a person to review, and ``merge_table`` turns the groups
into a label-merge file (pipeline/data/label_merge.py) that the folds stage can take.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import AgglomerativeClustering

from pipeline.core.errors import DataError
from pipeline.train.checkpoint import load_checkpoint


def classifier_rows(checkpoint: str | Path) -> np.ndarray:
    """The class weight rows (C, D) of a training checkpoint's classifier head."""
    state = load_checkpoint(checkpoint)
    weights = state.get("model", {}).get("head.weight")
    if weights is None:
        raise DataError(f"{checkpoint}: the model has no classifier head (head.weight): nothing to cluster")
    return weights.float().numpy()


def duplicate_groups(
    rows: np.ndarray, labels: Sequence[str], threshold: float, linkage: str = "average"
) -> pd.DataFrame:
    """Groups of labels whose classifier ``rows`` (C, D) cluster above the cosine ``threshold``.

    One line per label in a group of two or more: ``group`` (0 = the most similar group),
    ``label``, ``similarity`` (its mean cosine to the other members) and ``group_similarity``
    (the group's mean pairwise cosine). Labels in no group are left out.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or len(rows) != len(labels):
        raise DataError(f"classifier rows of shape {rows.shape} do not match {len(labels)} labels")
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    if len(rows) < 2 or (norms == 0).any():
        raise DataError("duplicate search needs at least 2 classifier rows, none of them zero")
    clusters = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage=linkage, distance_threshold=1.0 - threshold
    ).fit_predict(rows)
    unit = rows / norms
    found = []
    for cluster in np.unique(clusters):
        members = np.flatnonzero(clusters == cluster)
        if len(members) < 2:
            continue
        similarity = unit[members] @ unit[members].T
        mean_to_others = (similarity.sum(axis=1) - 1.0) / (len(members) - 1)
        found.append((float(mean_to_others.mean()), [str(labels[m]) for m in members], mean_to_others))
    found.sort(key=lambda group: (-group[0], group[1]))
    table = [
        {"group": g, "label": label, "similarity": float(s), "group_similarity": score}
        for g, (score, names, to_others) in enumerate(found)
        for label, s in zip(names, to_others, strict=True)
    ]
    return pd.DataFrame(table, columns=["group", "label", "similarity", "group_similarity"])


def merge_table(groups: pd.DataFrame, image_counts: Mapping[str, int]) -> pd.DataFrame:
    """``label,merged_into`` rows: each group kept under its label with the most images (ties: the
    smallest label), the others merged into it."""
    rows = []
    for _, members in groups.groupby("group", sort=True):
        names = sorted(members["label"], key=lambda name: (-image_counts[name], name))
        rows += [{"label": name, "merged_into": names[0]} for name in names[1:]]
    return pd.DataFrame(rows, columns=["label", "merged_into"])
