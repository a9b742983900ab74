"""rerank[model]: plain and k-reciprocal re-ranked distances of one model (test and out-of-fold)."""

from __future__ import annotations

from pathlib import Path

from pipeline.retrieval.candidates import save_candidate_sets
from pipeline.chain.rerank_step import RerankStageConfig, rerank_model
from pipeline.cli import run_stage, stage_parser
from pipeline.infer.store import load_features
from pipeline.params import load_section
from pipeline.infer.extract import ExtractConfig


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    cfg = load_section("rerank", RerankStageConfig, args.params)
    extract = load_section("extract", ExtractConfig, args.params)
    features = load_features(Path(extract.out) / args.model)
    save_candidate_sets(Path(cfg.out) / f"{args.model}.npz", rerank_model(features, cfg))


if __name__ == "__main__":
    run_stage(main)
