"""Retrieval: nearest-neighbour search, k-reciprocal re-ranking, query expansion, fusion.

One checked entry point per operation. Modules: search (search_topk, pairwise_distance,
rank_from_distance), rerank (k_reciprocal_rerank: exact, and the set-up both modes share),
rerank_sparse (sparse_rerank), expansion (QE, DBA), fusion, retrieve (the rerank stage's one
call, exact or sparse by its config, returning candidates.CandidateLists), candidates (the
lists the rerank, fuse and evaluate stages exchange), validate (input checks), backend + kreciprocal (the
array-namespace core); aligned + local_rescore (AlignedReID's local distance, torch).
"""
