"""Shared entry-point behaviour for the stage scripts: one clear line on a user error."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from pipeline.errors import PipelineError


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser that every stage shares: ``--params`` picks the params file."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser


def run_stage(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run ``main``; turn a PipelineError into ``error: ...`` on stderr and exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it logs every SIMD build it tries
    try:
        main(argv)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: rerun the stage to resume", file=sys.stderr)
        sys.exit(130)
