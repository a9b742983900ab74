"""The pieces of the evaluate stage's work (chain/evaluate.py): the score of a set of lists
or features against the test labels, CMC curves, and rank-list pictures of the best and worst
queries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.retrieval.candidates import CandidateLists
from pipeline.evaluate.metrics import competition_per_query, competition_scores
from pipeline.evaluate.ranklist import best_and_worst_queries, render_ranklist
from pipeline.evaluate.reid import centroid_gallery, reid_metrics, tar_at_far
from pipeline.evaluate.sheets import dim_outside, render_sheet
from pipeline.retrieval.search import pairwise_distance, rank_from_distance
from pipeline.core.sections import EvaluateConfig


@dataclass(frozen=True)
class Truth:
    """What the scoring knows about the test set (labels are never used upstream)."""

    query: pd.DataFrame  # image, label[, camera]
    gallery: pd.DataFrame
    excluded: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))  # (query, gallery) self-matches

    def cameras(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if "camera" in self.query and "camera" in self.gallery:
            return self.query["camera"].to_numpy(), self.gallery["camera"].to_numpy()
        return None, None


def score_lists(lists: CandidateLists, truth: Truth, cfg: EvaluateConfig) -> dict[str, object]:
    """Competition scores on the top k, and the re-id protocol on the whole candidate list.

    Gallery items outside a query's list rank last, so when ``rerank.candidates`` is smaller
    than the gallery, mAP and mINP are lower bounds; the chain's default keeps every item.
    """
    q_labels, g_labels = truth.query["label"].to_numpy(), truth.gallery["label"].to_numpy()
    lists = lists.without(truth.excluded)
    row: dict[str, object] = dict(competition_scores(lists.ranking(cfg.k), q_labels, g_labels, cfg.k, truth.excluded))
    q_cams, g_cams = truth.cameras()
    reid = reid_metrics(
        lists.to_dense(len(g_labels)), q_labels, g_labels, q_cams, g_cams,
        ranks=cfg.cmc_ranks, camera_filter=cfg.camera_filter, exclude=truth.excluded,
    )
    row.update({key: value for key, value in reid.items() if key != "cmc"})
    row["cmc"] = reid["cmc"]
    return row


def score_raw_features(query: np.ndarray, gallery: np.ndarray, truth: Truth, cfg: EvaluateConfig) -> dict[str, float]:
    """TAR at the configured FARs on plain cosine similarity (genuine pairs = same label)."""
    similarity = 1.0 - pairwise_distance(query, gallery, metric="cosine")
    return tar_at_far(similarity, truth.query["label"].to_numpy(), truth.gallery["label"].to_numpy(), cfg.tar_fars,
                      exclude=truth.excluded)


def score_centroids(query: np.ndarray, gallery: np.ndarray, truth: Truth, cfg: EvaluateConfig) -> dict[str, float]:
    """Each gallery identity as its mean embedding; top-1 and mAP@k against those centroids."""
    centroids, ids = centroid_gallery(gallery, truth.gallery["label"].to_numpy())
    k = min(cfg.k, len(ids))
    ranking = rank_from_distance(pairwise_distance(query, centroids, metric="cosine"), k)
    return competition_scores(ranking, truth.query["label"].to_numpy(), ids, k)


def draw_ranklists(
    directory: Path,
    lists: CandidateLists,
    truth: Truth,
    query_images: np.ndarray,
    gallery_images: np.ndarray,
    cfg: EvaluateConfig,
) -> list[Path]:
    """Rank-list pictures of the ``cfg.ranklists`` best and worst queries of ``lists``."""
    if cfg.ranklists == 0:
        return []
    q_labels, g_labels = truth.query["label"].to_numpy(), truth.gallery["label"].to_numpy()
    ranking = lists.without(truth.excluded).ranking(cfg.k)
    ap = competition_per_query(ranking, q_labels, g_labels, cfg.k, truth.excluded).ap
    best, worst = best_and_worst_queries(ap, cfg.ranklists)
    written = []
    for kind, picks in (("best", best), ("worst", worst)):
        for place, q in enumerate(picks, start=1):
            path = directory / f"{kind}{place}.png"
            render_ranklist(
                path,
                query_images[q],
                [gallery_images[g] for g in ranking[q]],
                [bool(g_labels[g] == q_labels[q]) for g in ranking[q]],
                f"{kind} #{place}: {Path(truth.query['image'].iloc[q]).name} (AP@{cfg.k} {ap[q]:.2f})",
            )
            written.append(path)
    return written


def draw_foreground(path: Path, model: str, query_images: np.ndarray, masks: np.ndarray) -> None:
    """The first queries as cached (top row) and with the background that suppression leaves
    out of the pooling dimmed (bottom row): ``masks`` are the extract stage's (n, h, w)."""
    before = [query_images[i] for i in range(len(masks))]
    after = [dim_outside(image, mask) for image, mask in zip(before, masks, strict=True)]
    render_sheet(path, [before, after], ["before", "after: pooled region only"], f"{model}: background suppression")


def split_cmc(rows: Mapping[str, dict[str, object]]) -> tuple[dict[str, dict[str, object]], dict[str, np.ndarray]]:
    """Scalar metrics for metrics.json, and the CMC arrays for the plots."""
    scalars = {name: {k: v for k, v in row.items() if k != "cmc"} for name, row in rows.items()}
    curves = {name: np.asarray(row["cmc"]) for name, row in rows.items() if "cmc" in row}
    return scalars, curves
