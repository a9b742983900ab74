"""fuse: one ranking from every model's candidate lists (weighted distances or rank voting).

Untuned, every model's 'raw' or 'reranked' lists are fused with the weights from params.yaml.
Tuned, the out-of-fold lists of all folds, pooled, choose per model raw or one re-ranking
setting, then the weights; the best single model is submitted alone when no mix beats it.
fuse.json records the choice, every option's out-of-fold score and the tuning set's size."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.retrieval.candidates import load_candidate_sets, named_set, save_candidate_sets
from pipeline.chain.fuse_choice import choice_record, choice_table, choose_fusion, tuning_set_size
from pipeline.chain.fuse_step import FuseConfig, configured_weights, fuse_lists, oof_labels
from pipeline.chain.rerank_step import RerankStageConfig, rerank_options
from pipeline.cli import run_stage, stage_parser
from pipeline.data.folds import FoldsConfig, read_folds
from pipeline.errors import DataError
from pipeline.infer.extract import ExtractConfig
from pipeline.infer.store import ModelFeatures, load_features
from pipeline.io_utils import write_json
from pipeline.params import load_section
from pipeline.retrieval.validate import check_same_ids
from pipeline.train.recipe import TrainStageConfig

log = logging.getLogger("fuse")


def oof_folds(features: dict[str, ModelFeatures], extract_out: Path) -> list[int]:
    """The folds every model has out-of-fold features for, with the same held-out images."""
    models = list(features)
    folds = sorted(features[models[0]].oof)
    if not folds:
        raise DataError(f"fuse.tune is on but {extract_out / models[0]} holds no out-of-fold features")
    for model, model_features in features.items():
        if sorted(model_features.oof) != folds:
            raise DataError(
                f"{extract_out / model}: out-of-fold features for folds {sorted(model_features.oof)}, "
                f"but {models[0]} has {folds}: rerun extract for every model"
            )
    for fold in folds:
        check_same_ids({m: f.oof[fold][0].ids for m, f in features.items()}, f"fold {fold} held-out queries")
    return folds


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    cfg = load_section("fuse", FuseConfig, args.params)
    models = load_section("train", TrainStageConfig, args.params).models
    rerank = load_section("rerank", RerankStageConfig, args.params)
    extract_out = Path(load_section("extract", ExtractConfig, args.params).out)
    paths = {m: Path(rerank.out) / f"{m}.npz" for m in models}
    lists = {m: load_candidate_sets(paths[m]) for m in models}
    features = {m: load_features(extract_out / m) for m in models}
    check_same_ids({m: f.query.ids for m, f in features.items()}, "query images")
    check_same_ids({m: f.gallery.ids for m, f in features.items()}, "gallery images")
    reference = features[models[0]]
    if cfg.tune:
        folds = oof_folds(features, extract_out)
        options = rerank_options(rerank)
        oof = [{o.name: {f: named_set(lists[m], f"oof{f}_{o.name}", paths[m]) for f in folds} for o in options} for m in models]
        ids = {f: (reference.oof[f][0].ids, reference.oof[f][1].ids) for f in folds}
        labels = oof_labels(read_folds(load_section("folds", FoldsConfig, args.params).out), ids)
        choice = choose_fusion(oof, labels, cfg.method, cfg.grid_step, fixed=None if cfg.source == "auto" else cfg.source)
        size = tuning_set_size(labels)
        log.info("out-of-fold choice:\n%s", choice_table(choice, models, size))
        chosen, weights = choice.chosen, choice.weights
        record = choice_record(choice, models, {o.name: o.settings() for o in options}, size)
    else:
        chosen, weights = [cfg.source] * len(models), configured_weights(cfg, models, args.params)
        record = {"oof_score": None, "options": {m: {"chosen": cfg.source} for m in models}}
    test_lists = [named_set(lists[m], option, paths[m]) for m, option in zip(models, chosen)]
    save_candidate_sets(cfg.out, {"fused": fuse_lists(test_lists, weights, cfg.method, len(reference.gallery.ids))})
    write_json(
        cfg.weights_out,
        {"weights": dict(zip(models, weights)), "tuned": cfg.tune, "method": cfg.method, "source": cfg.source, **record},
    )


if __name__ == "__main__":
    run_stage(main)
