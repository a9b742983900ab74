"""The rerank stage for one model: plain distances and re-ranked ones, test and out-of-fold."""

from __future__ import annotations

import numpy as np

from pipeline.chain.distances import Distances
from pipeline.infer.store import ModelFeatures
from pipeline.retrieval.expansion import alpha_query_expansion, average_query_expansion, database_augmentation
from pipeline.retrieval.rerank import RerankConfig, k_reciprocal_rerank
from pipeline.retrieval.rerank_sparse import sparse_rerank
from pipeline.retrieval.search import pairwise_distance, search_topk


def expand(query: np.ndarray, gallery: np.ndarray, cfg: RerankConfig) -> tuple[np.ndarray, np.ndarray]:
    """Database-side augmentation first (it changes the gallery QE reads), then query expansion."""
    if cfg.dba_k > 0:
        gallery = database_augmentation(gallery, cfg.dba_k)
    if cfg.query_expansion == "average":
        query = average_query_expansion(query, gallery, cfg.qe_k)
    elif cfg.query_expansion == "alpha":
        query = alpha_query_expansion(query, gallery, cfg.qe_k, cfg.qe_alpha)
    return query, gallery


def model_distances(query: np.ndarray, gallery: np.ndarray, cfg: RerankConfig) -> tuple[Distances, Distances]:
    """(plain cosine distances, re-ranked distances) of one query/gallery pair of feature sets."""
    query, gallery = expand(query, gallery, cfg)
    rerank_args = dict(k1=cfg.k1, k2=cfg.k2, lambda_value=cfg.lambda_value, half=cfg.half_precision, device=cfg.device)
    if cfg.mode == "sparse":
        k = min(cfg.candidates, len(gallery))
        raw = Distances(*reversed(search_topk(query, gallery, k, metric="cosine")))
        if not cfg.enabled:
            return raw, raw
        indices, values = sparse_rerank(query, gallery, candidates=k, **rerank_args)
        return raw, Distances(values, indices)
    raw = Distances(pairwise_distance(query, gallery, metric="cosine"))
    if not cfg.enabled:
        return raw, raw
    return raw, Distances(k_reciprocal_rerank(query, gallery, **rerank_args))


def rerank_model(features: ModelFeatures, cfg: RerankConfig) -> dict[str, Distances]:
    """Named distance sets for the rerank stage's ``.npz``: 'raw', 'reranked', 'oof<F>_raw', ..."""
    sets: dict[str, Distances] = {}
    sets["raw"], sets["reranked"] = model_distances(features.query.features, features.gallery.features, cfg)
    for fold, (query, gallery) in sorted(features.oof.items()):
        sets[f"oof{fold}_raw"], sets[f"oof{fold}_reranked"] = model_distances(query.features, gallery.features, cfg)
    return sets
