"""rerank[model]: plain and k-reciprocal re-ranked distances of one model (test and out-of-fold,
the held-out sets in the shape fuse.tuning_shape asks for: pipeline/chain/tuning_set.py)."""

from __future__ import annotations

from pipeline.chain import rerank
from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.params import StageParams


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    rerank.run(StageParams(args.params), args.model)


if __name__ == "__main__":
    run_stage(main)
