"""extract[model]: TTA features of one model's fold ensemble on the test set, plus each fold
model's features of its own held-out identities (out-of-fold, for tuning the fusion)."""

from __future__ import annotations

from pathlib import Path

from pipeline.cli import run_stage, stage_parser
from pipeline.data.cache import PreprocessConfig
from pipeline.data.folds import FoldsConfig, read_folds
from pipeline.export.onnx_export import ExportConfig
from pipeline.infer.extract import ExtractConfig, extract_model
from pipeline.infer.onnx_engine import load_onnx_model
from pipeline.infer.store import save_features
from pipeline.params import load_section
from pipeline.train.recipe import TrainStageConfig
from pipeline.train.trained import fold_checkpoints


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    cfg = load_section("extract", ExtractConfig, args.params)
    train = load_section("train", TrainStageConfig, args.params)
    cache = load_section("preprocess", PreprocessConfig, args.params)
    folds = load_section("folds", FoldsConfig, args.params)
    if cfg.engine == "onnx":  # the export stage's files, checked there against PyTorch
        export = load_section("export", ExportConfig, args.params)
        models = {f: Path(export.out) / args.model / f"fold{f}.onnx" for f in train.folds}
        features = extract_model(models, Path(cache.out), read_folds(folds.out), cfg, load=load_onnx_model)
    else:
        features = extract_model(fold_checkpoints(train, args.model), Path(cache.out), read_folds(folds.out), cfg)
    save_features(Path(cfg.out) / args.model, features, dtype=cfg.dtype)


if __name__ == "__main__":
    run_stage(main)
