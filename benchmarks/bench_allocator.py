"""Keeping freed memory (pipeline.core.allocator) against glibc's default, same run, same machine.

Two workloads of the demo recipe on the CPU, each timed in fresh processes (the setting is
process-wide), alternating default / kept so that a load change hits both:
- train: EfficientNet-Lite0 training steps, batch 64 at 96 px (forward, backward, Adam);
- extract: forward passes of 512 views at 96 px (128 images x flip x 2 scales, as extract
  stacks them).
Reported: median seconds per step over the repeats, system CPU time and minor page faults per
step, and the default / kept ratio.

Usage: python benchmarks/bench_allocator.py [--repeats 3] [--steps 8] [--threads 2]
Writes benchmarks/results/bench_allocator.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from harness import describe_machine

ROOT = Path(__file__).resolve().parents[1]
_WORKLOAD = """
import json, resource, sys, time
import torch
from pipeline.core.allocator import keep_freed_memory
from pipeline.core.compat import import_timm
mode, workload, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode == "kept":
    assert keep_freed_memory()
torch.set_num_threads(threads)
torch.manual_seed(0)
model = import_timm().create_model("efficientnet_lite0", num_classes=100)
if workload == "train":
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    images, labels = torch.randn(64, 3, 96, 96), torch.randint(0, 100, (64,))
    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
else:
    model.eval()
    views = torch.randn(512, 3, 96, 96)
    def step():
        with torch.inference_mode():
            model(views)
step()  # warm-up: first-touch of the weights and the heap
usage = resource.getrusage(resource.RUSAGE_SELF)
start = time.perf_counter()
for _ in range(steps):
    step()
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds / steps, "sys": (after.ru_stime - usage.ru_stime) / steps,
                  "faults": (after.ru_minflt - usage.ru_minflt) / steps}))
"""


def measure(mode: str, workload: str, steps: int, threads: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", _WORKLOAD, mode, workload, str(steps), str(threads)],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    lines = [
        "# Keeping freed memory (pipeline.core.allocator) against glibc's default",
        "",
        f"Command: `{' '.join(['python benchmarks/bench_allocator.py', *sys.argv[1:]])}`",
        "",
        describe_machine(torch=torch.__version__) + f"; {args.threads} threads, {args.steps} steps per process, "
        f"{args.repeats} processes per row",
        "",
        "| workload | allocator | s / step (median) | sys s / step | minor faults / step | default / kept |",
        "|---|---|---:|---:|---:|---:|",
    ]
    print("\n".join(lines))
    for workload in ("train", "extract"):
        runs: dict[str, list[dict[str, float]]] = {"default": [], "kept": []}
        for _ in range(args.repeats):
            for mode in runs:
                runs[mode].append(measure(mode, workload, args.steps, args.threads))
        medians = {mode: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for mode, rows in runs.items()}
        ratio = medians["default"]["seconds"] / medians["kept"]["seconds"]
        for mode, m in medians.items():
            shown = f"{ratio:.2f}x" if mode == "kept" else ""
            lines.append(f"| {workload} | {mode} | {m['seconds']:.3f} | {m['sys']:.3f} | {m['faults']:.0f} | {shown} |")
            print(lines[-1])
    (ROOT / "benchmarks/results/bench_allocator.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
