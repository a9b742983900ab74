"""The stage entry point: one clear line on a user error, never glued to a progress bar."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STAGE = """
import logging
from tqdm import tqdm
from pipeline.core.cli import run_stage
from pipeline.core.errors import DataError

def main(argv=None):
    bar = tqdm(total=10, desc="denoise")  # left open when the error strikes, as in a worker pool
    for i in range(10):
        if i == 2:
            logging.getLogger("denoise").warning("a warning mid-bar")
        if i == 5:
            raise DataError("train.csv: line 7: bad image")
        bar.update()

run_stage(main)
"""


def test_log_lines_and_the_error_start_their_own_line_after_a_progress_bar(tmp_path):
    done = subprocess.run([sys.executable, "-c", STAGE], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    # A terminal shows what follows the last carriage return of each line.
    shown = [re.split(r"\r", line)[-1] for line in done.stderr.splitlines()]
    assert "WARNING denoise: a warning mid-bar" in shown
    assert shown[-1] == "error: train.csv: line 7: bad image"
