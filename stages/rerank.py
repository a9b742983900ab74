"""rerank[model]: plain and k-reciprocal re-ranked distances of one model (test and out-of-fold,
the held-out sets in the shape fuse.tuning_shape asks for: pipeline/chain/tuning_set.py)."""

from __future__ import annotations

from pipeline.chain.rerank_step import stage_lists
from pipeline.core.cli import run_stage, stage_parser
from pipeline.data.folds import read_folds
from pipeline.infer.store import load_features
from pipeline.core.params import StageParams
from pipeline.retrieval.candidates import save_candidate_sets


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    params = StageParams(args.params)
    features = params.features(args.model)
    # with extract.plain_views, the same options on the single-view features, as 'plain_<option>'
    plain = load_features(features / "plain") if params.extract.plain_views else None
    sets = stage_lists(load_features(features), plain, read_folds(params.folds_file()), params.rerank, params.fuse.tuning_shape)
    save_candidate_sets(params.candidates(args.model), sets)


if __name__ == "__main__":
    run_stage(main)
