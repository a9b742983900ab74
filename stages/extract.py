"""extract[model]: TTA features of one model's fold ensemble on the test set, plus each fold
model's features of its own held-out identities (out-of-fold, for tuning the fusion)."""

from __future__ import annotations

from pathlib import Path

from pipeline.chain.rerank_step import RerankStageConfig
from pipeline.cli import run_stage, stage_parser
from pipeline.data.cache import PreprocessConfig
from pipeline.data.folds import FoldsConfig, read_folds
from pipeline.errors import DataError
from pipeline.infer.extract import ExtractConfig, extract_model
from pipeline.infer.store import save_features
from pipeline.params import load_section
from pipeline.train.recipe import TrainStageConfig


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    cfg = load_section("extract", ExtractConfig, args.params)
    train = load_section("train", TrainStageConfig, args.params)
    cache = load_section("preprocess", PreprocessConfig, args.params)
    folds = load_section("folds", FoldsConfig, args.params)
    checkpoints = {f: Path(train.out) / args.model / f"fold{f}" / "checkpoints" / "best.pt" for f in train.folds}
    missing = [str(p) for p in checkpoints.values() if not p.is_file()]
    if missing:
        raise DataError(f"missing checkpoints (run the train stages first): {', '.join(missing)}")
    # local features are stored only when retrieval uses them
    local = load_section("rerank", RerankStageConfig, args.params).local_weight > 0
    features = extract_model(checkpoints, Path(cache.out), read_folds(folds.out), cfg, local=local)
    save_features(Path(cfg.out) / args.model, features, dtype=cfg.dtype)


if __name__ == "__main__":
    run_stage(main)
