"""The rerank stage's library call: one model's features in, its candidate lists out, with
exact and sparse re-ranking behind one configuration."""

from __future__ import annotations

import numpy as np

from pipeline.core.errors import ConfigError
from pipeline.core.sections import RerankConfig
from pipeline.retrieval.ann import IVFSearch
from pipeline.retrieval.candidates import CandidateLists
from pipeline.retrieval.expansion import alpha_query_expansion, average_query_expansion, database_augmentation
from pipeline.retrieval.rerank import k_reciprocal_rerank
from pipeline.retrieval.rerank_sparse import sparse_rerank
from pipeline.retrieval.search import rank_rows, search_topk
from pipeline.retrieval.validate import check_k, check_pair


def retrieve(query: np.ndarray, gallery: np.ndarray, config: RerankConfig) -> CandidateLists:
    """One model's candidate lists, as the rerank stage writes them: DBA, then QE, then re-ranking.

    Lists of ``config.candidates`` gallery indices per query with ascending distances. With
    re-ranking off the distance is the cosine distance of the (expanded) features. DBA uses the
    QE weighting: alpha-weighted when query_expansion is "alpha", uniform otherwise. The
    features are checked here and again by each step, so every step stays a checked entry point
    of its own: a scan is 1-2 ms for 10k rows, within the noise of the call
    (benchmarks/results/rerank_probes.md).
    """
    try:
        config.validate()
    except ValueError as error:
        raise ConfigError(f"rerank: {error}") from error
    query, gallery = check_pair(query, gallery)
    check_k(config.candidates, gallery.shape[0], "rerank: candidates against the gallery size")
    alpha = config.qe_alpha if config.query_expansion == "alpha" else None
    if config.dba_k:
        gallery = database_augmentation(gallery, config.dba_k, alpha)
    if config.query_expansion == "alpha":
        query = alpha_query_expansion(query, gallery, config.qe_k, config.qe_alpha)
    elif config.query_expansion != "none":
        query = average_query_expansion(query, gallery, config.qe_k)
    if not config.enabled:
        return CandidateLists(*search_topk(query, gallery, config.candidates))
    options = dict(xp="auto", device=config.device, half=config.half_precision)
    knobs = (config.k1, config.k2, config.lambda_value)
    if config.mode == "sparse":
        ivf = IVFSearch(probe=config.ivf_probe) if config.neighbour_search == "ivf" else None
        return CandidateLists(*sparse_rerank(query, gallery, *knobs, config.candidates, **options, ivf=ivf))
    full = k_reciprocal_rerank(query, gallery, *knobs, **options)
    idx = rank_rows(full, config.candidates)
    return CandidateLists(idx, np.take_along_axis(full, idx, 1))
