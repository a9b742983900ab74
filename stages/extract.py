"""extract[model]: TTA features of one model's fold ensemble on the test set, plus each fold
model's features of its own held-out identities (out-of-fold, for tuning the fusion).

On the CPU (``extract.engine: auto``) each fold model is first exported to
<export.out>/<model>/fold<f>.onnx, checked against PyTorch, and run by onnxruntime."""

from __future__ import annotations

import dataclasses

from pipeline.core.cli import run_stage, stage_parser
from pipeline.data.cache import open_split
from pipeline.data.folds import read_folds
from pipeline.infer.engine import fold_models, load_fold_model
from pipeline.infer.extract import extract_model
from pipeline.infer.store import save_features
from pipeline.core.params import StageParams
from pipeline.train.distributed import resolve_device


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    params = StageParams(args.params)
    folds = read_folds(params.folds_file())
    local = params.rerank.local_weight > 0  # local features are stored only when retrieval uses them
    params.extract.check_local(params.rerank.local_weight, str(args.params))
    cfg = params.extract
    if cfg.engine == "onnx":  # onnxruntime's CPU provider, whatever extract.device says
        cfg = dataclasses.replace(cfg, device="cpu")
    # the adapt stage's weights for a model of adapt.models, else the train stages'
    checkpoints = params.retrieval_checkpoints(args.model)
    check_images = open_split(params.cache(), "query").images[: params.export.check_images]
    device = resolve_device(cfg.device, "extract.device")
    models = fold_models(checkpoints, check_images, cfg, params.export, params.onnx(args.model, 0).parent,
                         device, local)
    out = params.features(args.model)
    # replaces the whole folder
    save_features(out, extract_model(models, params.cache(), folds, cfg, local=local, load=load_fold_model),
                  dtype=cfg.dtype)
    if cfg.plain_views:
        plain = extract_model(models, params.cache(), folds, cfg.single_view(), local=local, load=load_fold_model)
        save_features(out / "plain", plain, dtype=cfg.dtype)


if __name__ == "__main__":
    run_stage(main)
