"""fuse: one ranking from every model's candidate lists (weighted distances or rank voting),
with the weights from params.yaml or tuned on the out-of-fold lists; the weights are recorded."""

from __future__ import annotations

from pathlib import Path

from pipeline.chain.distances import load_candidate_sets, save_candidate_sets
from pipeline.chain.fuse_step import FuseConfig, configured_weights, fuse_lists, oof_labels, tune_weights_on_folds
from pipeline.chain.rerank_step import RerankStageConfig
from pipeline.cli import run_stage, stage_parser
from pipeline.data.folds import FoldsConfig, read_folds
from pipeline.errors import DataError
from pipeline.infer.extract import ExtractConfig
from pipeline.infer.store import load_features
from pipeline.io_utils import write_json
from pipeline.params import load_section
from pipeline.retrieval.validate import check_same_ids
from pipeline.train.recipe import TrainStageConfig


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    cfg = load_section("fuse", FuseConfig, args.params)
    models = load_section("train", TrainStageConfig, args.params).models
    rerank_out = Path(load_section("rerank", RerankStageConfig, args.params).out)
    extract_out = Path(load_section("extract", ExtractConfig, args.params).out)
    lists = {m: load_candidate_sets(rerank_out / f"{m}.npz") for m in models}
    features = {m: load_features(extract_out / m) for m in models}
    check_same_ids({m: f.query.ids for m, f in features.items()}, "query images")
    check_same_ids({m: f.gallery.ids for m, f in features.items()}, "gallery images")
    reference = features[models[0]]
    val_score = None
    if cfg.tune:
        if not reference.oof:
            raise DataError(f"fuse.tune is on but {extract_out / models[0]} holds no out-of-fold features")
        folds = sorted(reference.oof)
        for model, model_features in features.items():
            if sorted(model_features.oof) != folds:
                raise DataError(
                    f"{extract_out / model}: out-of-fold features for folds {sorted(model_features.oof)}, "
                    f"but {models[0]} has {folds}: rerun extract for every model"
                )
        for fold in folds:
            check_same_ids({m: f.oof[fold][0].ids for m, f in features.items()}, f"fold {fold} held-out queries")
        oof = {f: [lists[m][f"oof{f}_{cfg.source}"] for m in models] for f in folds}
        ids = {f: (reference.oof[f][0].ids, reference.oof[f][1].ids) for f in folds}
        folds_path = load_section("folds", FoldsConfig, args.params).out
        weights, val_score = tune_weights_on_folds(oof, oof_labels(read_folds(folds_path), ids), cfg.method, cfg.grid_step)
    else:
        weights = configured_weights(cfg, models, args.params)
    fused = fuse_lists([lists[m][cfg.source] for m in models], weights, cfg.method, len(reference.gallery.ids))
    save_candidate_sets(cfg.out, {"fused": fused})
    write_json(
        cfg.weights_out,
        {"weights": dict(zip(models, weights)), "tuned": cfg.tune, "oof_score": val_score, "method": cfg.method, "source": cfg.source},
    )


if __name__ == "__main__":
    run_stage(main)
