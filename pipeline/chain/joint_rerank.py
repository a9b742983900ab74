"""Fuse first, then re-rank once (the DIGIX 2020 solutions' order).

The fuse stage's lists fusion re-ranks every model on its own and mixes the re-ranked
distances. The other order joins the models' features and re-ranks the joint neighbourhood
graph once: k-reciprocal neighbours found by the ensemble are better neighbours than any one
model's. Each model's L2-normalised features are scaled by sqrt(weight) and concatenated, so
the joint cosine similarity is the weighted mean of the models' cosine similarities; the
joint features then go through the rerank stage's own options (raw, the configured setting,
the grid), test set and every fold's out-of-fold set alike, and the tuned fuse stage submits
them only when the best of them beats what the lists would submit (their fusion or the best
single model) out of fold by more than ``fuse.min_gain_se`` standard errors, paired over the
tuning queries (gain_test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.chain.oof_fusion import pooled_per_query
from pipeline.chain.rerank import rerank_model, rerank_options
from pipeline.core.errors import DataError
from pipeline.infer.store import FeatureSet, ModelFeatures, oof_name
from pipeline.retrieval.candidates import CandidateLists
from pipeline.core.sections import RerankStageConfig


def joint_features(models: Sequence[ModelFeatures], weights: Sequence[float]) -> ModelFeatures:
    """One ModelFeatures whose every set is the models' sets side by side, each L2-normalised
    and scaled by sqrt(weight / sum of weights); models of weight 0 are left out.

    The models must hold the same images in the same order (the fuse stage checks the ids).
    """
    if len(models) != len(weights) or sum(weights) <= 0 or any(w < 0 for w in weights):
        raise DataError(f"joint features: {len(models)} models, weights {list(weights)}")
    kept = [(model, float(np.sqrt(w / sum(weights)))) for model, w in zip(models, weights) if w > 0]

    def join(sets: Sequence[FeatureSet]) -> FeatureSet:
        scaled = [
            scale * s.features / np.maximum(np.linalg.norm(s.features, axis=1, keepdims=True), 1e-12)
            for s, (_, scale) in zip(sets, kept)
        ]
        return FeatureSet(np.concatenate(scaled, axis=1).astype(np.float32), sets[0].ids)

    first = kept[0][0]
    return ModelFeatures(
        query=join([m.query for m, _ in kept]),
        gallery=join([m.gallery for m, _ in kept]),
        oof={
            fold: (join([m.oof[fold][0] for m, _ in kept]), join([m.oof[fold][1] for m, _ in kept]))
            for fold in first.oof
        },
        distractors={fold: join([m.distractors[fold] for m, _ in kept]) for fold in first.distractors},
    )


def joint_candidates(
    models: Sequence[ModelFeatures], weights: Sequence[float], cfg: RerankStageConfig
) -> dict[str, CandidateLists]:
    """The rerank stage's named lists ('<option>', 'oof<F>_<option>') of the joint features."""
    return rerank_model(joint_features(models, weights), cfg)


@dataclass(frozen=True)
class JointChoice:
    """The joint re-ranking's out-of-fold scores per option, its best option, that option's test
    lists and its per-query out-of-fold scores (oof_fusion.pooled_per_query order)."""

    weights: list[float]
    option_scores: dict[str, float]
    chosen: str
    lists: CandidateLists
    per_query: np.ndarray

    @property
    def score(self) -> float:
        return self.option_scores[self.chosen]

    def record(self, submitted: bool) -> dict[str, object]:
        """The fuse.json entry."""
        return {"weights": self.weights, "oof_scores": self.option_scores, "chosen": self.chosen,
                "oof_score": self.score, "submitted": submitted}

    def table(self) -> str:
        """One line per option for the fuse stage's log (* = the best)."""
        return "\n".join(
            f"joint re-ranking {option}: {score:.4f}" + ("*" if option == self.chosen else "")
            for option, score in self.option_scores.items()
        )


def choose_joint(
    models: Sequence[ModelFeatures],
    weights: Sequence[float],
    cfg: RerankStageConfig,
    labels: Mapping[int, tuple[np.ndarray, np.ndarray]],
) -> JointChoice:
    """Every rerank option of the joint features scored on the pooled out-of-fold lists (as
    the fuse stage scores a model's options; ties go to the earlier option)."""
    sets = joint_candidates(models, weights, cfg)
    per_query = {
        option.name: pooled_per_query({fold: sets[oof_name(fold, option.name)] for fold in labels}, labels)
        for option in rerank_options(cfg)
    }
    scores = {option: float(values.mean()) for option, values in per_query.items()}
    best = max(scores, key=scores.__getitem__)
    return JointChoice([float(w) for w in weights], scores, best, sets[best], per_query[best])
