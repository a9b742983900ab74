"""extract[model]: TTA features of one model's fold ensemble on the test set, plus each fold
model's features of its own held-out identities (out-of-fold, for tuning the fusion)."""

from __future__ import annotations

import dataclasses

from pipeline.cli import run_stage, stage_parser
from pipeline.data.folds import read_folds
from pipeline.errors import ConfigError
from pipeline.infer.extract import extract_model
from pipeline.infer.onnx_engine import load_onnx_model
from pipeline.infer.store import save_features
from pipeline.params import StageParams


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    params = StageParams(args.params)
    folds = read_folds(params.folds_file())
    local = params.rerank.local_weight > 0  # local features are stored only when retrieval uses them
    if params.extract.engine == "onnx":  # the export stage's files, checked there against PyTorch
        if local:
            raise ConfigError(f"{args.params}: extract.engine onnx exports the global embedding only; "
                              "rerank.local_weight > 0 needs extract.engine torch")
        models = {f: params.onnx(args.model, f) for f in params.train.folds}
        on_cpu = dataclasses.replace(params.extract, device="cpu")  # onnxruntime's CPU provider
        features = extract_model(models, params.cache(), folds, on_cpu, load=load_onnx_model)
    else:
        features = extract_model(params.trained_checkpoints(args.model), params.cache(), folds, params.extract, local=local)
    save_features(params.features(args.model), features, dtype=params.extract.dtype)


if __name__ == "__main__":
    run_stage(main)
