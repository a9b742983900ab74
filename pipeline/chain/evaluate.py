"""The evaluate stage's whole job: the score table of every model, re-ranked and chosen lists,
the fused ranking and the submission as written; its CMC curves and rank-list pictures."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pipeline.chain.score_table import Truth, draw_foreground, draw_ranklists, score_centroids, score_lists, score_raw_features, split_cmc
from pipeline.chain.model_inputs import ModelInputs
from pipeline.evaluate.metrics import competition_scores, metrics_table, write_metrics
from pipeline.evaluate.plots import plot_cmc, write_cmc_plot_data
from pipeline.core.io_utils import atomic_dir, write_text
from pipeline.retrieval.candidates import CandidateLists, named_set
from pipeline.core.sections import EvaluateConfig
from pipeline.chain.fuse_choice import chosen_options
from pipeline.core.params import StageParams
from pipeline.data.cache import open_split
from pipeline.data.self_match import recorded_pairs
from pipeline.evaluate.submission import read_submission
from pipeline.retrieval.candidates import load_candidate_sets

log = logging.getLogger("evaluate")

Rows = dict[str, dict[str, object]]


@dataclass(frozen=True)
class RankListImages:
    """The cached query and gallery pixels the rank-list pictures show."""

    query: np.ndarray
    gallery: np.ndarray


def write_unscored(cfg: EvaluateConfig) -> None:
    """Without query / gallery labels: empty metrics (``labels: false``), an empty curve file
    and an empty report folder, so the stage's outputs exist and say that nothing was scored."""
    log.warning("query or gallery has no labels: nothing to score")
    write_metrics(cfg.out, {}, labels=False)
    write_text(cfg.cmc, "rank,method,cmc\n")
    with atomic_dir(cfg.report):
        pass


def score_models(
    models: Mapping[str, ModelInputs], chosen: Mapping[str, str], truth: Truth, cfg: EvaluateConfig
) -> Rows:
    """Per model: its plain lists (with TAR@FAR of its raw features), re-ranked lists, the lists
    the fuse stage chose for it, and (``cfg.centroid``) its identity-centroid scores."""
    rows: Rows = {}
    for model, inputs in models.items():
        query, gallery = inputs.features.query.features, inputs.features.gallery.features
        rows[model] = score_lists(inputs.lists["raw"], truth, cfg)
        rows[model].update(score_raw_features(query, gallery, truth, cfg))
        rows[f"{model}+rerank"] = score_lists(inputs.lists["reranked"], truth, cfg)
        option = chosen[model]
        rows[f"{model} chosen: {option}"] = score_lists(named_set(inputs.lists, option, inputs.lists_path), truth, cfg)
        if cfg.centroid:
            rows[f"{model} centroid"] = dict(score_centroids(query, gallery, truth, cfg))
    return rows


def score_submission(submitted: np.ndarray, length: int, truth: Truth, cfg: EvaluateConfig) -> dict[str, object]:
    """The submission file as read back (what a leaderboard sees), on its top min(k, length)."""
    k = min(cfg.k, length)
    return dict(competition_scores(submitted, truth.query["label"], truth.gallery["label"], k, truth.excluded))


def write_scores(
    cfg: EvaluateConfig, rows: Rows, fused: CandidateLists, truth: Truth, images: RankListImages,
    foreground: Mapping[str, np.ndarray] | None = None,
) -> None:
    """metrics.json, the CMC plot data, and the report folder (CMC picture, rank lists of ``fused``,
    and per model in ``foreground`` its background-suppression masks of the first queries)."""
    scalars, curves = split_cmc(rows)
    with atomic_dir(cfg.report) as tmp:
        plot_cmc(tmp / "cmc.png", curves)
        draw_ranklists(tmp, fused, truth, images.query, images.gallery, cfg)
        for model, masks in (foreground or {}).items():
            draw_foreground(tmp / f"foreground_{model}.png", model, images.query, masks)
    write_cmc_plot_data(cfg.cmc, curves)
    write_metrics(cfg.out, scalars, camera_filter=cfg.camera_filter, k=cfg.k, self_matches_excluded=len(truth.excluded))
    log.info("scores:\n%s", metrics_table(scalars))


def run(params: StageParams) -> None:
    """The evaluate stage: every row of the score table, written with its curves and pictures;
    an unlabelled test set gets a note instead."""
    cfg, models = params.evaluate, params.train.models
    fused = load_candidate_sets(params.fuse.out)["fused"]
    chosen = chosen_options(params.fuse.weights_out, models)
    query, gallery = open_split(params.cache(), "query"), open_split(params.cache(), "gallery")
    if "label" not in query.table or "label" not in gallery.table:
        write_unscored(cfg)
        return
    own = recorded_pairs(params.denoised(), query.table["image"], gallery.table["image"])
    truth = Truth(query.table, gallery.table, own)
    inputs = {m: ModelInputs.read(params.candidates(m), params.features(m)) for m in models}
    rows = score_models(inputs, chosen, truth, cfg)
    rows["fused"] = score_lists(fused, truth, cfg)
    submit = params.submit
    submitted = read_submission(submit.out, query.table["image"].tolist(), gallery.table["image"].tolist(), submit.length)
    rows["submission"] = score_submission(submitted, submit.length, truth, cfg)
    masks = {m: i.features.foreground for m, i in inputs.items() if i.features.foreground is not None}
    write_scores(cfg, rows, fused, truth, RankListImages(query.images, gallery.images), masks)
