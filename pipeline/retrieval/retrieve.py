"""The rerank stage's library call: one model's features in, its candidate lists out."""

from __future__ import annotations

import numpy as np

from pipeline.errors import ConfigError
from pipeline.retrieval.expansion import alpha_query_expansion, average_query_expansion, database_augmentation
from pipeline.retrieval.rerank import RerankConfig, k_reciprocal_rerank
from pipeline.retrieval.rerank_sparse import sparse_rerank
from pipeline.retrieval.search import rank_from_distance, search_topk
from pipeline.retrieval.validate import check_k


def retrieve(query: np.ndarray, gallery: np.ndarray, config: RerankConfig) -> tuple[np.ndarray, np.ndarray]:
    """One model's candidate lists, as the rerank stage writes them: DBA, then QE, then re-ranking.

    Returns (gallery indices (Nq, candidates) int64, distances float32), ascending. With
    re-ranking off the distance is the cosine distance of the (expanded) features. DBA uses the
    QE weighting: alpha-weighted when query_expansion is "alpha", uniform otherwise.
    """
    try:
        config.validate()
    except ValueError as error:
        raise ConfigError(f"rerank: {error}") from error
    alpha = config.qe_alpha if config.query_expansion == "alpha" else None
    if config.dba_k:
        gallery = database_augmentation(gallery, config.dba_k, alpha)
    if config.query_expansion == "average":
        query = average_query_expansion(query, gallery, config.qe_k)
    elif config.query_expansion == "alpha":
        query = alpha_query_expansion(query, gallery, config.qe_k, config.qe_alpha)
    if not config.enabled:
        return search_topk(query, gallery, config.candidates, metric="cosine")
    options = dict(xp="auto", device=config.device, half=config.half_precision)
    if config.mode == "sparse":
        return sparse_rerank(
            query, gallery, config.k1, config.k2, config.lambda_value, config.candidates, **options
        )
    check_k(config.candidates, np.asarray(gallery).shape[0], "rerank: candidates against the gallery size")
    full = k_reciprocal_rerank(query, gallery, config.k1, config.k2, config.lambda_value, **options)
    idx = rank_from_distance(full, config.candidates)
    return idx, np.take_along_axis(full, idx, 1)
