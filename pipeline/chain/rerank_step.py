"""The rerank stage for one model: plain and re-ranked candidate lists, test and out-of-fold."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipeline.chain.distances import CandidateLists
from pipeline.infer.store import ModelFeatures
from pipeline.retrieval.rerank import RerankConfig
from pipeline.retrieval.retrieve import retrieve
from pipeline.retrieval.search import search_topk


@dataclass(frozen=True)
class RerankStageConfig(RerankConfig):
    """params.yaml section ``rerank``: the re-ranking knobs plus where the lists go."""

    out: str = "outputs/rerank"


def model_candidates(query: np.ndarray, gallery: np.ndarray, cfg: RerankConfig) -> tuple[CandidateLists, CandidateLists]:
    """(plain cosine lists, lists after DBA / QE / re-ranking) of one query and gallery set."""
    cfg = replace(cfg, candidates=min(cfg.candidates, len(gallery)))
    raw = CandidateLists(*search_topk(query, gallery, cfg.candidates, metric="cosine"))
    return raw, CandidateLists(*retrieve(query, gallery, cfg))


def rerank_model(features: ModelFeatures, cfg: RerankConfig) -> dict[str, CandidateLists]:
    """Named lists for the rerank stage's ``.npz``: 'raw', 'reranked', 'oof<F>_raw', 'oof<F>_reranked'."""
    sets: dict[str, CandidateLists] = {}
    sets["raw"], sets["reranked"] = model_candidates(features.query.features, features.gallery.features, cfg)
    for fold, (query, gallery) in sorted(features.oof.items()):
        sets[f"oof{fold}_raw"], sets[f"oof{fold}_reranked"] = model_candidates(query.features, gallery.features, cfg)
    return sets
