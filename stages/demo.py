"""demo: generate the built-in procedural retrieval dataset (params section `demo`)."""

from __future__ import annotations

from pipeline.core.cli import run_stage, stage_parser
from pipeline.demo.generate import DemoConfig, generate_demo
from pipeline.core.params import load_section


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    generate_demo(load_section("demo", DemoConfig, args.params))


if __name__ == "__main__":
    run_stage(main)
