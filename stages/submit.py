"""submit: the leaderboard file, one line per query: `query.jpg,{g1.jpg,...,g10.jpg}`."""

from __future__ import annotations

from pipeline.chain import submit
from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.params import StageParams


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    submit.run(StageParams(args.params))


if __name__ == "__main__":
    run_stage(main)
