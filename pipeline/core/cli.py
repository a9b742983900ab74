"""Shared entry-point behaviour for the stage scripts: one clear line on a user error."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from pipeline.core.allocator import keep_freed_memory
from pipeline.core.errors import PipelineError


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser that every stage shares: ``--params`` picks the params file."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser


def run_stage(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run ``main``; turn a PipelineError (or a missing file) into ``error: ...`` on stderr and exit status 2.

    Log records and the final error go through tqdm, which clears an unfinished progress bar
    first, so a message never ends up glued to the end of a bar's line. Freed memory is kept
    for reuse first (``pipeline.core.allocator``): every stage allocates tensors batch after batch.
    """
    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it logs every SIMD build it tries
    try:
        with logging_redirect_tqdm():
            main(argv)
    except PipelineError as error:
        _say(f"error: {error}")
        sys.exit(2)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
        # A missing input that no check of ours named first: still one line naming the path.
        _say(f"error: {error.filename}: {(error.strerror or 'not found').lower()}")
        sys.exit(2)
    except KeyboardInterrupt:
        _say("interrupted: rerun the stage to resume")
        sys.exit(130)


def _say(message: str) -> None:
    # An abandoned bar's line ends without a newline; start on a fresh line either way.
    for bar in list(tqdm._instances):
        bar.close()
    tqdm.write(message, file=sys.stderr)
