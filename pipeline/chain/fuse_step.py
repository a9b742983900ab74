"""The fuse stage: one ranking from every model's candidate lists.

Weights come from params.yaml, or, with ``tune: true``, from a grid search over the weight
simplex that maximises the mean validation score (0.5 top-1 + 0.5 mAP@10) of the fused
out-of-fold lists across the trained folds; the chosen weights are recorded either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.chain.distances import CandidateLists
from pipeline.errors import ConfigError, DataError
from pipeline.evaluate.metrics import competition_scores
from pipeline.retrieval.fusion import fuse_candidate_lists, rank_voting, tune_weights


@dataclass(frozen=True)
class FuseConfig:
    """params.yaml section ``fuse``."""

    out: str = "outputs/fused.npz"
    weights_out: str = "outputs/fuse.json"
    weights: dict[str, float] = field(default_factory=dict)  # model -> weight; unlisted models get 1
    source: Literal["reranked", "raw"] = "reranked"
    method: Literal["distance", "rank_voting"] = "distance"
    tune: bool = False
    grid_step: float = 0.1

    def validate(self) -> None:
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must not be negative")


def configured_weights(cfg: FuseConfig, models: Sequence[str], source: str = "params.yaml") -> list[float]:
    unknown = sorted(set(cfg.weights) - set(models))
    if unknown:
        raise ConfigError(f"{source}: fuse.weights names '{unknown[0]}', which train.models does not list")
    weights = [cfg.weights.get(m, 1.0) for m in models]
    if sum(weights) <= 0:
        raise ConfigError(f"{source}: fuse.weights must not all be zero")
    return weights


def fuse_lists(lists: Sequence[CandidateLists], weights: Sequence[float], method: str, num_gallery: int) -> CandidateLists:
    """Weighted distance fusion, or rank voting (its 'distance' is then the fused rank)."""
    if method == "rank_voting":
        ranking = rank_voting([c.indices for c in lists], weights, num_gallery)
        return CandidateLists(ranking, np.broadcast_to(np.arange(ranking.shape[1], dtype=np.float32), ranking.shape).copy())
    return CandidateLists(*fuse_candidate_lists([(c.indices, c.values) for c in lists], weights))


def tune_weights_on_folds(
    oof: Mapping[int, Sequence[CandidateLists]],
    labels: Mapping[int, tuple[np.ndarray, np.ndarray]],
    method: str,
    grid_step: float,
    k: int = 10,
) -> tuple[list[float], float]:
    """Best weights on the out-of-fold lists: mean competition score over the folds.

    ``oof[f]`` holds each model's lists for fold f's held-out queries, ``labels[f]`` the
    (query labels, gallery labels) of that fold.
    """

    def mean_score(weights: Sequence[float]) -> float:
        scores = []
        for fold, lists in oof.items():
            query_labels, gallery_labels = labels[fold]
            fused = fuse_lists(lists, weights, method, len(gallery_labels))
            ranking = fused.ranking(min(k, fused.indices.shape[1]))
            scores.append(competition_scores(ranking, query_labels, gallery_labels, k=ranking.shape[1])["score"])
        return float(np.mean(scores))

    return tune_weights(len(next(iter(oof.values()))), mean_score, grid_step)


def oof_labels(folds: pd.DataFrame, ids: Mapping[int, tuple[Sequence[str], Sequence[str]]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Labels of each fold's held-out query and gallery images, looked up by image id."""
    label_of = dict(zip(folds["image"], folds["label"].astype(str)))
    try:
        return {
            fold: (np.array([label_of[i] for i in query]), np.array([label_of[i] for i in gallery]))
            for fold, (query, gallery) in ids.items()
        }
    except KeyError as error:
        raise DataError(f"out-of-fold features name image {error} that folds.csv does not list") from error
