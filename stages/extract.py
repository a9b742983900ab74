"""extract[model]: TTA features of one model's fold ensemble on the test set, plus each fold
model's features of its own held-out identities (out-of-fold, for tuning the fusion)."""

from __future__ import annotations

from pipeline.cli import run_stage, stage_parser
from pipeline.data.folds import read_folds
from pipeline.errors import DataError
from pipeline.infer.extract import extract_model
from pipeline.infer.store import save_features
from pipeline.params import StageParams


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    params = StageParams(args.params)
    checkpoints = {f: params.checkpoint(args.model, f) for f in params.train.folds}
    missing = [str(p) for p in checkpoints.values() if not p.is_file()]
    if missing:
        raise DataError(f"missing checkpoints (run the train stages first): {', '.join(missing)}")
    # local features are stored only when retrieval uses them
    local = params.rerank.local_weight > 0
    features = extract_model(checkpoints, params.cache(), read_folds(params.folds_file()), params.extract, local=local)
    save_features(params.features(args.model), features, dtype=params.extract.dtype)


if __name__ == "__main__":
    run_stage(main)
