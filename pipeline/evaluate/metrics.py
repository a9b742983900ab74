"""Competition scores on a ranking (top-1, mAP@k, score) and the metrics table.

AP@k, as the competition defines it, for one query with ranked list ``g1..gk``::

    AP@k = sum_{i<=k} precision@i * rel(i) / min(k, n_rel)

where ``rel(i)`` is 1 when ``gi`` has the query's label and ``n_rel`` counts the gallery
items with that label. A query with no relevant gallery item at all scores 0 for both
top-1 and AP@k (it stays in the averages, as on a leaderboard) and is counted in
``queries_without_match``; a test set where no query has a match scores 0, it is not an error.

``exclude`` lists (query, gallery) index pairs that are the query's own image
(``dataset.self_matches: exclude``): the ranking must not contain them, and they do not
count among the query's relevant items.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from pipeline.core.errors import DataError
from pipeline.evaluate.labels import Labels, as_pairs, check_rows, encode_pair
from pipeline.core.io_utils import write_json


def check_ranking(ranked: np.ndarray, n_query: int, n_gallery: int, k: int) -> np.ndarray:
    """The first ``k`` columns of ``ranked`` as int64, after checking they form a ranking.

    Errors (DataError): k below 1 or above the gallery size, fewer than k columns, a row
    count that differs from the query count, an index outside the gallery, a gallery
    index repeated within one row's top k (it would count twice towards AP).
    """
    ranked = np.asarray(ranked)
    if ranked.ndim != 2:
        raise DataError(f"ranking: expected a 2-D array (queries x ranks), got shape {ranked.shape}")
    if not np.issubdtype(ranked.dtype, np.integer):
        raise DataError(f"ranking: expected integer gallery indices, got dtype {ranked.dtype}")
    check_rows(ranked.shape[0], n_query, "ranking (queries)")
    if n_gallery < 1:
        raise DataError("ranking: the gallery set is empty")
    if k < 1:
        raise DataError(f"ranking: the rank cut-off must be at least 1, got {k}")
    if k > n_gallery:
        raise DataError(f"ranking: the rank cut-off {k} is larger than the gallery ({n_gallery} images)")
    if ranked.shape[1] < k:
        raise DataError(f"ranking: {ranked.shape[1]} ranked items per query, fewer than the cut-off {k}")
    top = ranked[:, :k].astype(np.int64)
    bad = np.flatnonzero(((top < 0) | (top >= n_gallery)).any(axis=1))
    if bad.size:
        raise DataError(f"ranking: row {int(bad[0])} names a gallery index outside 0..{n_gallery - 1}")
    ordered = np.sort(top, axis=1)
    repeated = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
    if repeated.size:
        raise DataError(f"ranking: row {int(repeated[0])} lists one gallery index twice in its top {k}")
    return top


@dataclass(frozen=True)
class CompetitionPerQuery:
    """Per-query results, aligned with the query order."""

    ap: np.ndarray  # AP@k, float64, 0 for a query without a match
    top1: np.ndarray  # bool: the first ranked item has the query's label
    has_match: np.ndarray  # bool: some gallery item has the query's label


def relevant_counts(query: np.ndarray, gallery: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Per query, the gallery items sharing its label code, less its ``exclude`` pairs that do."""
    counts = np.bincount(gallery, minlength=int(max(query.max(), gallery.max())) + 1)[query]
    q, g = as_pairs(exclude).T
    np.subtract.at(counts, q, (gallery[g] == query[q]).astype(counts.dtype))
    return counts


def competition_per_query(
    ranked: np.ndarray, query_labels: Labels, gallery_labels: Labels, k: int = 10, exclude: np.ndarray | None = None
) -> CompetitionPerQuery:
    """AP@k and top-1 hit for every query (see the module docstring for the definition)."""
    query, gallery = encode_pair(query_labels, gallery_labels)
    top = check_ranking(ranked, query.size, gallery.size, k)
    q, g = as_pairs(exclude).T
    listed = np.flatnonzero((top[q] == g[:, None]).any(axis=1))
    if listed.size:
        raise DataError(f"ranking: query row {int(q[listed[0]])} still lists its own image (gallery {int(g[listed[0]])})")
    relevant = gallery[top] == query[:, None]
    n_relevant = relevant_counts(query, gallery, exclude)
    precision = np.cumsum(relevant, axis=1) / np.arange(1, k + 1)
    ap = (precision * relevant).sum(axis=1) / np.maximum(np.minimum(k, n_relevant), 1)
    return CompetitionPerQuery(ap=ap, top1=relevant[:, 0], has_match=n_relevant > 0)


def competition_scores(
    ranked: np.ndarray, query_labels: Labels, gallery_labels: Labels, k: int = 10, exclude: np.ndarray | None = None
) -> dict[str, float]:
    """``{"top1", f"map@{k}", "score", "queries_without_match"}`` for a ranking.

    ``ranked`` is (Nq, >=k) gallery indices, best first; score = 0.5*top1 + 0.5*map@k.
    """
    per_query = competition_per_query(ranked, query_labels, gallery_labels, k, exclude)
    top1 = float(per_query.top1.mean())
    map_k = float(per_query.ap.mean())
    return {
        "top1": top1,
        f"map@{k}": map_k,
        "score": 0.5 * top1 + 0.5 * map_k,
        "queries_without_match": int((~per_query.has_match).sum()),
    }


def _scalar(value: object, where: str) -> float | int | None:
    """A JSON-ready number; NaN/inf become null because JSON has no spelling for them."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise ValueError(f"metrics table {where}: expected a number, got {type(value).__name__}")
    if isinstance(value, Integral):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def _checked_rows(rows: Mapping[str, Mapping[str, object]]) -> dict[str, dict[str, float | int | None]]:
    if not rows:
        raise ValueError("metrics table: no rows")
    return {
        str(method): {str(key): _scalar(value, f"[{method}][{key}]") for key, value in metrics.items()}
        for method, metrics in rows.items()
    }


def metrics_table(rows: Mapping[str, Mapping[str, object]]) -> str:
    """A markdown table: one row per method, one column per metric (first-seen order).

    Floats print with 4 decimals, integers as they are, a metric a method lacks as "–".
    """
    checked = _checked_rows(rows)
    columns = list(dict.fromkeys(key for metrics in checked.values() for key in metrics))

    def cell(value: float | int | None) -> str:
        if value is None:
            return "–"
        return str(value) if isinstance(value, int) else f"{value:.4f}"

    lines = [
        "| method | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for method, metrics in checked.items():
        lines.append(f"| {method} | " + " | ".join(cell(metrics.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_metrics(
    path: str | os.PathLike[str], rows: Mapping[str, Mapping[str, object]], **extra: object
) -> None:
    """Write metrics.json atomically: ``{"table": {method: {metric: value}}, **extra}``.

    Values must be scalars (drop the "cmc" array of reid_metrics first); NaN is written as null.
    """
    if "table" in extra:
        raise ValueError("metrics.json: 'table' is reserved for the rows")
    # An empty table is a valid result: a test set without labels has nothing to score.
    write_json(path, {"table": _checked_rows(rows) if rows else {}, **extra})
