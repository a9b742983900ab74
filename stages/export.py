"""export[model]: each fold model's embedding path (no TTA) as ONNX with dynamic batch, checked
against PyTorch with onnxruntime on the first query images of the cache.
`python stages/export.py --model lite0` writes <export.out>/lite0/fold<f>.onnx and check.json."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.cli import run_stage, stage_parser
from pipeline.data.cache import PreprocessConfig, open_split
from pipeline.export.folds import export_folds
from pipeline.export.onnx_export import ExportConfig
from pipeline.params import load_section
from pipeline.train.recipe import TrainStageConfig
from pipeline.train.trained import fold_checkpoints

log = logging.getLogger("export")


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    cfg = load_section("export", ExportConfig, args.params)
    train = load_section("train", TrainStageConfig, args.params)
    cache = load_section("preprocess", PreprocessConfig, args.params)
    checkpoints = fold_checkpoints(train, args.model)  # every one must exist before anything is written
    images = open_split(Path(cache.out), "query").images[: cfg.check_images]
    report = export_folds(checkpoints, images, cfg, Path(cfg.out) / args.model)
    for fold, gaps in report["folds"].items():
        log.info("%s fold %s: max |onnx - torch| %.2e (normalised), %.2e (raw)", args.model, fold,
                 gaps["max_abs_normalised"], gaps["max_abs_raw"])


if __name__ == "__main__":
    run_stage(main)
