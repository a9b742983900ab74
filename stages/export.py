"""export[model]: each fold model's embedding path (no TTA) as ONNX with dynamic batch, checked
against PyTorch with onnxruntime on the first query images of the cache.
`python stages/export.py --model lite0` writes <export.out>/lite0/fold<f>.onnx and check.json."""

from __future__ import annotations

import logging

from pipeline.cli import run_stage, stage_parser
from pipeline.data.cache import open_split
from pipeline.export.folds import export_folds
from pipeline.params import StageParams

log = logging.getLogger("export")


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    params = StageParams(args.params)
    cfg = params.export
    # every one must exist before anything is written; adapted ones for a model of adapt.models
    checkpoints = params.retrieval_checkpoints(args.model)
    images = open_split(params.cache(), "query").images[: cfg.check_images]
    report = export_folds(checkpoints, images, cfg, params.onnx(args.model, 0).parent)
    for fold, gaps in report["folds"].items():
        log.info("%s fold %s: max |onnx - torch| %.2e (normalised), %.2e (raw)", args.model, fold,
                 gaps["max_abs_normalised"], gaps["max_abs_raw"])


if __name__ == "__main__":
    run_stage(main)
