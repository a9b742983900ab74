"""rerank[model]: plain and k-reciprocal re-ranked distances of one model (test and out-of-fold,
the held-out sets in the shape fuse.tuning_shape asks for: pipeline/chain/tuning_set.py)."""

from __future__ import annotations

from pipeline.chain.rerank_step import PLAIN, rerank_model
from pipeline.chain.tuning_set import tuning_features
from pipeline.cli import run_stage, stage_parser
from pipeline.data.folds import read_folds
from pipeline.infer.store import load_features
from pipeline.params import StageParams
from pipeline.retrieval.candidates import save_candidate_sets


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    params = StageParams(args.params)
    folds = read_folds(params.folds_file())
    shape = params.fuse.tuning_shape
    features = tuning_features(load_features(params.features(args.model)), folds, shape)
    sets = rerank_model(features, params.rerank)
    if params.extract.plain_views:  # the same options on the single-view features, as 'plain_<option>'
        plain = tuning_features(load_features(params.features(args.model) / "plain"), folds, shape)
        sets.update(rerank_model(plain, params.rerank, prefix=PLAIN))
    save_candidate_sets(params.candidates(args.model), sets)


if __name__ == "__main__":
    run_stage(main)
