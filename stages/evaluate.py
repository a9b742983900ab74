"""evaluate: the score table (each model, each model re-ranked, each model with the lists the
fuse stage chose for it, the fused ranking and the submission file as written), CMC curves
and rank-list pictures. Needs query/gallery labels; without them it records that nothing
could be scored."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline.chain.distances import load_candidate_sets, named_set
from pipeline.chain.evaluate_step import (
    EvaluateConfig,
    Truth,
    draw_foreground,
    draw_ranklists,
    score_centroids,
    score_lists,
    score_raw_features,
    split_cmc,
)
from pipeline.chain.fuse_choice import chosen_options
from pipeline.chain.fuse_step import FuseConfig
from pipeline.chain.rerank_step import RerankStageConfig
from pipeline.chain.submit_step import SubmitConfig
from pipeline.cli import run_stage, stage_parser
from pipeline.data.cache import PreprocessConfig, open_split
from pipeline.data.denoise import DenoiseConfig
from pipeline.data.self_match import recorded_pairs
from pipeline.evaluate.metrics import competition_scores, metrics_table, write_metrics
from pipeline.evaluate.plots import plot_cmc, write_cmc_plot_data
from pipeline.evaluate.submission import read_submission
from pipeline.infer.extract import ExtractConfig
from pipeline.infer.store import load_features
from pipeline.io_utils import atomic_dir, write_text
from pipeline.params import load_section
from pipeline.train.recipe import TrainStageConfig

log = logging.getLogger("evaluate")


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    cfg = load_section("evaluate", EvaluateConfig, args.params)
    models = load_section("train", TrainStageConfig, args.params).models
    cache = Path(load_section("preprocess", PreprocessConfig, args.params).out)
    rerank_out = Path(load_section("rerank", RerankStageConfig, args.params).out)
    extract_out = Path(load_section("extract", ExtractConfig, args.params).out)
    fuse = load_section("fuse", FuseConfig, args.params)
    fused = load_candidate_sets(fuse.out)["fused"]
    chosen = chosen_options(fuse.weights_out, models)
    submit = load_section("submit", SubmitConfig, args.params)
    query, gallery = open_split(cache, "query"), open_split(cache, "gallery")
    if "label" not in query.table or "label" not in gallery.table:
        log.warning("query or gallery has no labels: nothing to score")
        write_metrics(cfg.out, {}, labels=False)
        write_text(cfg.cmc, "rank,method,cmc\n")
        with atomic_dir(cfg.report):
            pass
        return
    own = recorded_pairs(load_section("denoise", DenoiseConfig, args.params).out, query.table["image"], gallery.table["image"])
    truth = Truth(query.table, gallery.table, own)
    rows: dict[str, dict[str, object]] = {}
    foreground: dict[str, np.ndarray] = {}  # background-suppression masks, drawn in the report
    for model in models:
        lists = load_candidate_sets(rerank_out / f"{model}.npz")
        features = load_features(extract_out / model)
        if features.foreground is not None:
            foreground[model] = features.foreground
        rows[model] = score_lists(lists["raw"], truth, cfg)
        rows[model].update(score_raw_features(features.query.features, features.gallery.features, truth, cfg))
        rows[f"{model}+rerank"] = score_lists(lists["reranked"], truth, cfg)
        option = chosen[model]
        rows[f"{model} chosen: {option}"] = score_lists(named_set(lists, option, rerank_out / f"{model}.npz"), truth, cfg)
        if cfg.centroid:
            rows[f"{model} centroid"] = dict(score_centroids(features.query.features, features.gallery.features, truth, cfg))
    rows["fused"] = score_lists(fused, truth, cfg)
    # The file as written, read back and scored: what a leaderboard would see.
    submitted = read_submission(submit.out, query.table["image"].tolist(), gallery.table["image"].tolist(), submit.length)
    k = min(cfg.k, submit.length)
    rows["submission"] = dict(competition_scores(submitted, truth.query["label"], truth.gallery["label"], k, truth.excluded))
    scalars, curves = split_cmc(rows)
    with atomic_dir(cfg.report) as tmp:
        plot_cmc(tmp / "cmc.png", curves)
        draw_ranklists(tmp, fused, truth, query.images, gallery.images, cfg)
        for model, masks in foreground.items():
            draw_foreground(tmp / f"foreground_{model}.png", model, query.images, masks)
    write_cmc_plot_data(cfg.cmc, curves)
    write_metrics(cfg.out, scalars, camera_filter=cfg.camera_filter, k=cfg.k, self_matches_excluded=len(truth.excluded))
    log.info("scores:\n%s", metrics_table(scalars))


if __name__ == "__main__":
    run_stage(main)
