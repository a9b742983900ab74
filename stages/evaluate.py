"""evaluate: the score table (each model, each model re-ranked, each model with the lists the
fuse stage chose for it, the fused ranking and the submission file as written), CMC curves
and rank-list pictures. Needs query/gallery labels; without them it records that nothing
could be scored."""

from __future__ import annotations

from pipeline.chain import evaluate
from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.params import StageParams


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    args = parser.parse_args(argv)
    evaluate.run(StageParams(args.params))


if __name__ == "__main__":
    run_stage(main)
