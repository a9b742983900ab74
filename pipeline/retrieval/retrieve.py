"""The rerank stage's library call: one model's features in, its candidate lists out."""

from __future__ import annotations

import numpy as np

from pipeline.core.errors import ConfigError
from pipeline.retrieval.candidates import CandidateLists
from pipeline.retrieval.expansion import augment_database, expand_queries
from pipeline.retrieval.rerank import rerank_checked
from pipeline.retrieval.rerank_sparse import sparse_checked
from pipeline.retrieval.search import prepare_checked, rank_rows, search_prepared
from pipeline.retrieval.validate import check_k, check_pair
from pipeline.core.sections import RerankConfig


def retrieve(query: np.ndarray, gallery: np.ndarray, config: RerankConfig) -> CandidateLists:
    """One model's candidate lists, as the rerank stage writes them: DBA, then QE, then re-ranking.

    Lists of ``config.candidates`` gallery indices per query with ascending distances. With
    re-ranking off the distance is the cosine distance of the (expanded) features. DBA uses the
    QE weighting: alpha-weighted when query_expansion is "alpha", uniform otherwise.
    """
    try:
        config.validate()
    except ValueError as error:
        raise ConfigError(f"rerank: {error}") from error
    return retrieve_checked(*check_pair(query, gallery), config)


def retrieve_checked(q: np.ndarray, g: np.ndarray, config: RerankConfig) -> CandidateLists:
    """``retrieve`` of features that passed ``check_pair``, with a config already validated
    (read by ``from_mapping``, or by ``retrieve``): the features and the k1 / k2 / lambda
    knobs are checked once however many settings a caller runs on them."""
    alpha = config.qe_alpha if config.query_expansion == "alpha" else None
    if config.dba_k:
        g = augment_database(g, config.dba_k, alpha)
    if config.query_expansion != "none":
        q = expand_queries(q, g, config.qe_k, alpha)
    if not config.enabled:
        return nearest(q, g, config.candidates)
    options = dict(xp="auto", device=config.device, half=config.half_precision)
    if config.mode == "sparse":
        return CandidateLists(*sparse_checked(q, g, config.k1, config.k2, config.lambda_value, config.candidates, **options))
    check_k(config.candidates, g.shape[0], "rerank: candidates against the gallery size")
    full = rerank_checked(q, g, config.k1, config.k2, config.lambda_value, **options)
    idx = rank_rows(full, config.candidates)
    return CandidateLists(idx, np.take_along_axis(full, idx, 1))


def nearest(q: np.ndarray, g: np.ndarray, candidates: int) -> CandidateLists:
    """Plain cosine lists of features that passed ``check_pair`` (no expansion, no re-ranking)."""
    return CandidateLists(*search_prepared(*prepare_checked(q, g, "cosine"), candidates, metric="cosine"))
