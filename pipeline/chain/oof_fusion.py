"""Fusion on the out-of-fold lists, the pieces the fuse stage (chain/fuse.py) tunes with:
weighted distance fusion or rank voting of candidate lists, and the pooled score of every fold's
held-out queries (0.5 top-1 + 0.5 mAP@10), each ranked against its own fold's gallery (followed
by the fold's distractors, with extract.oof_distractors), scored together as one set (fold
validation sets of a few dozen identities are too noisy to score one by one); the weight search
over the simplex by that score; the held-out labels by image id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline.core.errors import ConfigError, DataError
from pipeline.evaluate.metrics import competition_per_query
from pipeline.retrieval.candidates import CandidateLists
from pipeline.retrieval.fusion import fuse_candidate_lists, rank_voting, tune_weights
from pipeline.core.sections import FuseConfig


def configured_weights(cfg: FuseConfig, models: Sequence[str], source: str = "params.yaml") -> list[float]:
    unknown = sorted(set(cfg.weights) - set(models))
    if unknown:
        raise ConfigError(f"{source}: fuse.weights names '{unknown[0]}', which train.models does not list")
    weights = [cfg.weights.get(m, 1.0) for m in models]
    if sum(weights) <= 0:
        raise ConfigError(f"{source}: fuse.weights must not all be zero")
    return weights


def fuse_lists(lists: Sequence[CandidateLists], weights: Sequence[float], method: str, num_gallery: int) -> CandidateLists:
    """Weighted distance fusion, or rank voting (its 'distance' is then the fused rank).

    A single model with all the weight gives its own lists unchanged: fusing would only let
    the zero-weight models' items reorder its ties, so the fused result could differ from
    (and score below) the model it consists of.
    """
    nonzero = [m for m, weight in enumerate(weights) if weight > 0]
    if len(nonzero) == 1:
        return lists[nonzero[0]]
    if method == "rank_voting":
        ranking = rank_voting([c.indices for c in lists], weights, num_gallery)
        return CandidateLists(ranking, np.broadcast_to(np.arange(ranking.shape[1], dtype=np.float32), ranking.shape).copy())
    return fuse_candidate_lists(lists, weights)


def pooled_per_query(
    lists: Mapping[int, CandidateLists], labels: Mapping[int, tuple[np.ndarray, np.ndarray]], k: int = 10
) -> np.ndarray:
    """0.5 top-1 + 0.5 AP@k of every held-out query of all folds, fold by fold in ``labels``' order.

    ``lists[f]`` ranks fold f's held-out queries against fold f's held-out gallery and
    ``labels[f]`` holds their (query labels, gallery labels). The same order for every option,
    so two options' scores pair query by query (gain_test.paired_gain).
    """
    scores = []
    for fold, (query_labels, gallery_labels) in labels.items():
        fold_lists = lists[fold]
        if fold_lists.indices.shape[0] != len(query_labels):
            raise DataError(
                f"fold {fold}: out-of-fold lists of {fold_lists.indices.shape[0]} queries for a tuning set of "
                f"{len(query_labels)} (fuse.tuning_shape or the features changed since the rerank stage ran: rerun it)"
            )
        ranking = fold_lists.ranking(min(k, fold_lists.indices.shape[1]))
        per_query = competition_per_query(ranking, query_labels, gallery_labels, k=ranking.shape[1])
        scores.append(0.5 * per_query.top1 + 0.5 * per_query.ap)
    return np.concatenate(scores)


def pooled_score(
    lists: Mapping[int, CandidateLists], labels: Mapping[int, tuple[np.ndarray, np.ndarray]], k: int = 10
) -> float:
    """0.5 top-1 + 0.5 mAP@k over the held-out queries of all folds together (``pooled_per_query``):
    every query counts once, so a fold with more queries weighs more than in a mean of per-fold scores."""
    return float(pooled_per_query(lists, labels, k).mean())


def tune_weights_on_folds(
    oof: Mapping[int, Sequence[CandidateLists]],
    labels: Mapping[int, tuple[np.ndarray, np.ndarray]],
    method: str,
    grid_step: float,
    k: int = 10,
) -> tuple[list[float], float]:
    """Best weights on the out-of-fold lists by pooled score (see ``pooled_score``).

    ``oof[f]`` holds each model's lists for fold f's held-out queries, ``labels[f]`` the
    (query labels, gallery labels) of that fold.
    """

    def score(weights: Sequence[float]) -> float:
        fused = {fold: fuse_lists(lists, weights, method, len(labels[fold][1])) for fold, lists in oof.items()}
        return pooled_score(fused, labels, k)

    return tune_weights(len(next(iter(oof.values()))), score, grid_step)


def oof_labels(
    folds: pd.DataFrame,
    ids: Mapping[int, tuple[Sequence[str], Sequence[str]]],
    distractors: Mapping[int, int] | None = None,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Labels of each fold's held-out query and gallery images, looked up by image id, the gallery's
    followed by ``distractors[f]`` labels that equal no query's (their own labels are never read),
    so a distractor in a list counts as a miss (rows as ModelFeatures.oof_gallery orders them)."""
    label_of = dict(zip(folds["image"], folds["label"].astype(str)))
    distractors = distractors or {}
    try:
        labels = {
            fold: (np.array([label_of[i] for i in query]), np.array([label_of[i] for i in gallery]))
            for fold, (query, gallery) in ids.items()
        }
    except KeyError as error:
        raise DataError(f"out-of-fold features name image {error} that folds.csv does not list") from error
    return {
        fold: (query, np.concatenate([gallery, np.full(distractors.get(fold, 0), _no_match(query))]))
        for fold, (query, gallery) in labels.items()
    }


def _no_match(labels: np.ndarray) -> str:
    """A label equal to none of ``labels``: it is longer than the longest of them."""
    return "<distractor>".ljust(max((len(label) for label in labels), default=0) + 1, "_")
