"""extract[model]: TTA features of one model's fold ensemble on the test set, plus each fold
model's features of its own held-out identities (out-of-fold, for tuning the fusion)."""

from __future__ import annotations

import dataclasses

from pipeline.cli import run_stage, stage_parser
from pipeline.data.folds import read_folds
from pipeline.infer.extract import extract_model
from pipeline.infer.onnx_engine import load_onnx_model
from pipeline.infer.store import ModelFeatures, save_features
from pipeline.params import StageParams
from pipeline.sections import ExtractConfig


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    params = StageParams(args.params)
    folds = read_folds(params.folds_file())
    local = params.rerank.local_weight > 0  # local features are stored only when retrieval uses them
    params.extract.check_local(params.rerank.local_weight, str(args.params))

    def extract(cfg: ExtractConfig) -> ModelFeatures:
        if cfg.engine == "onnx":  # the export stage's files, checked there against PyTorch
            models = {f: params.onnx(args.model, f) for f in params.train.folds}
            on_cpu = dataclasses.replace(cfg, device="cpu")  # onnxruntime's CPU provider
            return extract_model(models, params.cache(), folds, on_cpu, load=load_onnx_model)
        # the adapt stage's weights for a model of adapt.models, else the train stages'
        return extract_model(params.retrieval_checkpoints(args.model), params.cache(), folds, cfg, local=local)

    out = params.features(args.model)
    save_features(out, extract(params.extract), dtype=params.extract.dtype)  # replaces the whole folder
    if params.extract.plain_views:
        save_features(out / "plain", extract(params.extract.single_view()), dtype=params.extract.dtype)


if __name__ == "__main__":
    run_stage(main)
