"""Re-identification metrics on a full distance matrix: CMC, mAP, mINP, TAR@FAR, centroids.

Protocol (Market-1501 semantics): for each query the whole gallery is ranked by distance,
smallest first, ties broken by gallery index (the order of a stable argsort). With
``camera_filter`` on, gallery items with the query's label AND the query's camera are
removed from that query's list (junk), as are the (query, gallery) pairs in ``exclude`` (a
query's own image, ``dataset.self_matches: exclude``). A query left without a true match is
skipped and counted in ``skipped_queries``; when every query is skipped, CMC is 0 at every
rank and mAP / mINP are NaN (null in metrics.json): nothing to average, and not an error.
mAP is over the full ranking, not truncated. CMC ranks beyond the gallery size are capped
to it (a gallery of 7 reports cmc@1, cmc@5 and cmc@7 for ranks 1/5/10).

Speed: a stable argsort of 10k x 40k float32 costs ~35 s on 2 cores. This module sorts
only the distance *values* (numpy's SIMD sort, ~20x faster), finds each same-label item's
position by binary search and adds the equal values ahead of it by gallery index, which
gives exactly the stable-argsort rank. Only the few same-label items per query are
handled in Python (benchmarks/bench_evaluate.py: ~4 s in all, 15x the usual loop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from pipeline.core.errors import DataError
from pipeline.evaluate.labels import Labels, as_label_array, as_pairs, check_rows, encode_pair

_CHUNK_BYTES = 64 << 20  # rows per sort chunk: bounded memory for a memmapped distance matrix


def _check_scores(scores: np.ndarray, n_query: int, n_gallery: int, what: str) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise DataError(f"{what}: expected a 2-D array (queries x gallery), got shape {scores.shape}")
    if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
        raise DataError(f"{what}: expected numbers, got dtype {scores.dtype}")
    check_rows(scores.shape[0], n_query, f"{what} (queries)")
    check_rows(scores.shape[1], n_gallery, f"{what} (gallery)")
    return scores


def _row_chunks(scores: np.ndarray, desc: str) -> tqdm:
    rows = max(1, _CHUNK_BYTES // max(1, scores.shape[1] * scores.itemsize))
    starts = range(0, scores.shape[0], rows)
    return tqdm(((s, min(s + rows, scores.shape[0])) for s in starts), total=len(starts), desc=desc,
                unit="chunk", leave=False, disable=len(starts) < 4)


def _check_no_nan(sorted_chunk: np.ndarray, first_row: int, what: str) -> None:
    # NaN sorts last, so the last column of the sorted chunk tells all.
    if np.issubdtype(sorted_chunk.dtype, np.floating):
        bad = np.flatnonzero(np.isnan(sorted_chunk[:, -1]))
        if bad.size:
            raise DataError(f"{what}: NaN in query row {first_row + int(bad[0])}")


def _stable_positions(row: np.ndarray, sorted_row: np.ndarray, items: np.ndarray) -> np.ndarray:
    """0-based positions of gallery ``items`` in the stable ascending order of ``row``."""
    values = row[items]
    positions = np.searchsorted(sorted_row, values, side="left")
    tied = np.flatnonzero(np.searchsorted(sorted_row, values, side="right") - positions > 1)
    for t in tied:  # rare with real distances: equal values ahead by gallery index
        positions[t] += np.count_nonzero(row[: items[t]] == values[t])
    return positions


@dataclass(frozen=True)
class ReidPerQuery:
    """Per-query results, aligned with the query order; skipped queries hold NaN / 0."""

    ap: np.ndarray  # average precision over the full ranking
    inp: np.ndarray  # inverse negative penalty: matches / rank of the last match
    first_match_rank: np.ndarray  # 1-based rank of the first true match, 0 when skipped
    evaluated: np.ndarray  # bool: the query had a true match left after filtering


def reid_per_query(
    dist: np.ndarray,
    query_labels: Labels,
    gallery_labels: Labels,
    query_cameras: Labels | None = None,
    gallery_cameras: Labels | None = None,
    camera_filter: bool = False,
    exclude: np.ndarray | None = None,
) -> ReidPerQuery:
    """AP, INP and first-match rank for every query (protocol in the module docstring)."""
    query, gallery = encode_pair(query_labels, gallery_labels)
    dist = _check_scores(dist, query.size, gallery.size, "distance matrix")
    if camera_filter:
        if query_cameras is None or gallery_cameras is None:
            raise DataError("camera filtering needs query and gallery cameras; turn it off or add a camera column")
        query_cam, gallery_cam = encode_pair(query_cameras, gallery_cameras, "camera")
        check_rows(query_cam.size, query.size, "query cameras")
        check_rows(gallery_cam.size, gallery.size, "gallery cameras")

    # Gallery indices grouped by label (ascending within a label): the same-label items per query.
    by_label = np.argsort(gallery, kind="stable")
    bounds = np.searchsorted(gallery[by_label], np.arange(int(max(query.max(), gallery.max())) + 2))

    excluded: dict[int, list[int]] = {}
    for q, g in as_pairs(exclude):
        excluded.setdefault(int(q), []).append(int(g))

    n_query = query.size
    ap = np.full(n_query, np.nan)
    inp = np.full(n_query, np.nan)
    first = np.zeros(n_query, dtype=np.int64)
    for start, stop in _row_chunks(dist, "reid metrics"):
        chunk = np.asarray(dist[start:stop])
        sorted_chunk = np.sort(chunk, axis=1)
        _check_no_nan(sorted_chunk, start, "distance matrix")
        for r in range(stop - start):
            i = start + r
            same = by_label[bounds[query[i]] : bounds[query[i] + 1]]
            if same.size == 0:
                continue
            positions = _stable_positions(chunk[r], sorted_chunk[r], same)
            junk = np.isin(same, excluded.get(i, []))
            if camera_filter:
                junk |= gallery_cam[same] == query_cam[i]
            if junk.any():
                good = np.sort(positions[~junk])
                # Each junk item ahead of a match moves that match up one place.
                good -= np.searchsorted(np.sort(positions[junk]), good)
            else:
                good = np.sort(positions)
            if good.size == 0:
                continue
            ranks = good + 1
            ap[i] = float(np.mean(np.arange(1, ranks.size + 1) / ranks))
            inp[i] = ranks.size / ranks[-1]
            first[i] = ranks[0]
    return ReidPerQuery(ap=ap, inp=inp, first_match_rank=first, evaluated=first > 0)


def reid_metrics(
    dist: np.ndarray,
    query_labels: Labels,
    gallery_labels: Labels,
    query_cameras: Labels | None = None,
    gallery_cameras: Labels | None = None,
    ranks: Sequence[int] = (1, 5, 10),
    camera_filter: bool = False,
    exclude: np.ndarray | None = None,
) -> dict:
    """CMC, mAP and mINP over the evaluated queries.

    Returns ``"cmc"`` (float64 array, CMC at ranks 1..max(ranks), as fractions; ranks capped
    to the gallery size), ``"cmc@<r>"`` for each (capped) r in ``ranks``, ``"mAP"``,
    ``"mINP"``, ``"evaluated_queries"`` and ``"skipped_queries"``.
    """
    ranks = [int(r) for r in ranks]
    if not ranks or min(ranks) < 1:
        raise DataError(f"reid metrics: CMC ranks must be positive, got {ranks}")
    n_gallery = np.shape(dist)[1] if np.ndim(dist) == 2 else 0
    if n_gallery:  # an empty gallery gets its own error below
        ranks = sorted({min(r, n_gallery) for r in ranks})
    max_rank = max(ranks)
    per_query = reid_per_query(dist, query_labels, gallery_labels, query_cameras, gallery_cameras, camera_filter, exclude)
    evaluated = per_query.evaluated
    n_eval = int(evaluated.sum())
    first = per_query.first_match_rank[evaluated]
    hits_at = np.bincount(np.minimum(first, max_rank + 1), minlength=max_rank + 2)[1 : max_rank + 1]
    cmc = np.cumsum(hits_at) / max(n_eval, 1)
    result: dict = {"cmc": cmc}
    result.update({f"cmc@{r}": float(cmc[r - 1]) for r in ranks})
    result["mAP"] = float(np.mean(per_query.ap[evaluated])) if n_eval else math.nan
    result["mINP"] = float(np.mean(per_query.inp[evaluated])) if n_eval else math.nan
    result["evaluated_queries"] = n_eval
    result["skipped_queries"] = int(evaluated.size - n_eval)
    return result


def _false_accepts_allowed(far: float, n_impostor: int) -> int:
    # The tiny relative margin keeps e.g. 0.29 * 100 (= 28.999999999999996) at 29.
    return math.floor(far * n_impostor * (1 + 1e-12))


def tar_at_far(
    scores: np.ndarray,
    query_labels: Labels,
    gallery_labels: Labels,
    fars: Sequence[float] = (1e-4, 1e-3, 1e-2),
    *,
    is_distance: bool = False,
    exclude: np.ndarray | None = None,
) -> dict[str, float]:
    """True-accept rate at each false-accept rate, over all query x gallery pairs.

    ``scores`` are similarities (higher = same identity) or, with ``is_distance``,
    distances. Genuine pairs share a label, impostor pairs do not. A pair is accepted
    when its similarity is strictly above the threshold; for each FAR the threshold is
    the lowest one that accepts at most floor(FAR * n_impostor) impostor pairs, so the
    achieved FAR never exceeds the target (a FAR below 1/n_impostor means no impostor
    may pass). Keys: ``f"tar@far={far:g}"``, e.g. ``"tar@far=0.001"``; NaN without genuine
    or without impostor pairs. The (query, gallery) pairs in ``exclude`` (a query's own
    image) are neither genuine nor impostor.
    """
    fars = [float(f) for f in fars]
    if not fars or not all(0.0 < f < 1.0 for f in fars):
        raise ValueError(f"tar_at_far: each FAR must lie in (0, 1), got {fars}")
    query, gallery = encode_pair(query_labels, gallery_labels)
    scores = _check_scores(scores, query.size, gallery.size, "score matrix")
    pairs = as_pairs(exclude)
    excluded_genuine = int((gallery[pairs[:, 1]] == query[pairs[:, 0]]).sum())
    all_genuine = int(np.bincount(gallery, minlength=int(max(query.max(), gallery.max())) + 1)[query].sum())
    n_genuine = all_genuine - excluded_genuine
    n_impostor = query.size * gallery.size - all_genuine - (len(pairs) - excluded_genuine)
    if n_genuine == 0 or n_impostor == 0:
        # Undefined rather than an error: a test set without matches is still scored (as 0 /
        # NaN, written null), like the queries without a match in the other metrics.
        return {f"tar@far={far:g}": math.nan for far in fars}
    allowed = {far: _false_accepts_allowed(far, n_impostor) for far in fars}
    keep = min(max(allowed.values()) + 1, n_impostor)

    genuine_parts: list[np.ndarray] = []
    top_impostors = np.empty(0)
    for start, stop in _row_chunks(scores, "tar@far"):
        similarity = np.array(scores[start:stop], dtype=np.float64)  # a copy: masked below
        if np.isnan(similarity).any():
            raise DataError(f"score matrix: NaN in query rows {start}..{stop - 1}")
        if is_distance:
            np.negative(similarity, out=similarity)
        ignored = np.zeros(similarity.shape, dtype=bool)
        rows = pairs[(pairs[:, 0] >= start) & (pairs[:, 0] < stop)]
        ignored[rows[:, 0] - start, rows[:, 1]] = True
        genuine = (gallery[None, :] == query[start:stop, None]) & ~ignored
        genuine_parts.append(similarity[genuine])
        similarity[genuine | ignored] = -np.inf  # never take an impostor's place below
        merged = np.concatenate([top_impostors, similarity.ravel()])
        top_impostors = np.partition(merged, merged.size - keep)[-keep:] if merged.size > keep else merged
    top_impostors = np.sort(top_impostors)[::-1]
    genuine_scores = np.concatenate(genuine_parts)
    result = {}
    for far, n_allowed in allowed.items():
        threshold = top_impostors[n_allowed] if n_allowed < n_impostor else -np.inf
        result[f"tar@far={far:g}"] = float(np.mean(genuine_scores > threshold))
    return result


def centroid_gallery(gallery_features: np.ndarray, gallery_labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    """One L2-normalised mean embedding per gallery identity, for centroid retrieval.

    Returns ``(centroids (n_ids, D) float32, ids (n_ids,) str)`` with ids sorted; rank
    queries against ``centroids`` and score with ``ids`` as the gallery labels.
    """
    features = np.asarray(gallery_features, dtype=np.float32)
    labels = as_label_array(gallery_labels, "gallery labels")
    if features.ndim != 2:
        raise DataError(f"gallery features: expected (N, D), got shape {features.shape}")
    check_rows(features.shape[0], labels.size, "gallery features")
    if labels.size == 0:
        raise DataError("gallery features: the gallery set is empty")
    ids, codes = np.unique(labels, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(ids.size))
    sums = np.add.reduceat(features[order].astype(np.float64), starts, axis=0)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    degenerate = np.flatnonzero(norms[:, 0] == 0)
    if degenerate.size:
        raise DataError(f"gallery features: identity {str(ids[degenerate[0]])!r} has a zero mean embedding")
    return (sums / norms).astype(np.float32), ids
