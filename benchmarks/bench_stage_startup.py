"""Start-up cost of the stage scripts: modules imported and wall time of `stages/<name>.py --help`.

A stage should import only what it runs (issue 9): the numpy-only rerank stage must not load
torch to read where extract wrote its features. Each script runs in a fresh interpreter; the
modules are those in sys.modules once argparse has printed the help, the time is the wall time
of the whole `python stages/<name>.py --help` process (best and median of --repeats).

Usage: python benchmarks/bench_stage_startup.py [--repeats 7] [--label after] [stage ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "albumentations", "pytorch_metric_learning", "cv2", "pandas")
_PROBE = """
import json, runpy, sys
sys.argv = [{script!r}, "--help"]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit:
    pass
print("\\n@@" + json.dumps(sorted(sys.modules)))
"""


def loaded_modules(script: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE.format(script=script)], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.rsplit("@@", 1)[1])


def wall_times(script: str, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stages", nargs="*", default=["rerank", "fuse", "submit", "evaluate", "folds"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--label", default="", help="a name for this row (e.g. before / after)")
    args = parser.parse_args()
    print("| stage | label | modules | pipeline modules | heavy libraries loaded | best s | median s |")
    print("|---|---|---|---|---|---|---|")
    for stage in args.stages:
        script = f"stages/{stage}.py"
        modules = loaded_modules(script)
        ours = [m for m in modules if m == "pipeline" or m.startswith("pipeline.")]
        heavy = [h for h in HEAVY if h in modules]
        times = wall_times(script, args.repeats)
        print(f"| {stage} | {args.label} | {len(modules)} | {len(ours)} | {', '.join(heavy) or 'none'} "
              f"| {min(times):.2f} | {statistics.median(times):.2f} |")


if __name__ == "__main__":
    main()
