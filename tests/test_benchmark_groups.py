"""`make bench` runs every benchmark: each benchmarks/bench_*.py is in exactly one Makefile group."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_bench_script_is_in_one_make_group():
    makefile = (ROOT / "Makefile").read_text()
    groups = {}
    for name in ("BENCH_SPEED", "BENCH_QUALITY"):
        body = re.search(rf"^{name} := ((?:.*\\\n)*.*)$", makefile, flags=re.M).group(1)
        groups[name] = body.replace("\\\n", " ").split()
    listed = groups["BENCH_SPEED"] + groups["BENCH_QUALITY"]
    scripts = sorted(p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py"))
    assert sorted(listed) == scripts and len(set(listed)) == len(listed)
    assert re.search(r"^bench: bench-speed bench-quality$", makefile, flags=re.M)
