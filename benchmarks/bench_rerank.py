"""Exact k-reciprocal re-ranking vs the plain reference (tests/reference_rerank.py).

Same inputs, same run, N = 2k, 5k, 10k (half queries, half gallery), 256-D clustered unit
features. Each (method, N) runs in its own fresh process, so peak memory is that process's
peak RSS (resource.getrusage ru_maxrss) less its RSS just before the call (psutil). The
reference's time includes computing its three input distance matrices from the features.

    .venv/bin/python benchmarks/bench_rerank.py [--sizes 2000 5000 10000]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import describe_machine

ROOT = Path(__file__).resolve().parents[1]
DIM = 256


def clustered_labelled(n: int, dim: int, seed: int, spread: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) L2-normalised float32 points around n // 10 random centres, and each point's centre."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 10), dim))
    labels = rng.integers(0, centres.shape[0], n)
    x = centres[labels] + spread * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    return clustered_labelled(n, dim, seed)[0]


def worker(method: str, data: Path, out: Path, num_query: int, extra: list[str]) -> None:
    """Run one method on saved features in this (fresh) process; print seconds and peak bytes."""
    import psutil

    sys.path.insert(0, str(ROOT / "tests"))
    x = np.load(data)
    q, g = x[:num_query], x[num_query:]
    if method == "reference":
        from reference_rerank import euclidean_distances, re_ranking

        def run(q, g):
            return re_ranking(euclidean_distances(q, g), euclidean_distances(q, q), euclidean_distances(g, g))
    elif method == "exact":
        from pipeline.retrieval.rerank import k_reciprocal_rerank

        def run(q, g):
            return k_reciprocal_rerank(q, g, xp="numpy")
    else:  # sparse [candidates] or sparse-ivf [candidates, probe]: (indices, distances)
        from pipeline.retrieval.ann import IVFSearch
        from pipeline.retrieval.rerank_sparse import sparse_rerank

        ivf = IVFSearch(probe=int(extra[1])) if method == "sparse-ivf" else None

        def run(q, g):
            return sparse_rerank(q, g, candidates=min(int(extra[0]), g.shape[0]), xp="numpy", ivf=ivf)
    run(q[:30], g[:60])  # warm-up: lazy imports and library start-up are not the algorithm
    base = psutil.Process().memory_info().rss
    seconds = float("inf")
    for _ in range(int(os.environ.get("BENCH_REPEATS", "1"))):  # best of: the machine is shared
        start = time.perf_counter()
        result = run(q, g)
        seconds = min(seconds, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    if isinstance(result, tuple):
        np.save(out.with_suffix(".idx.npy"), result[0])
        result = result[1]
    np.save(out, result)
    print(f"{seconds:.6f} {peak}")


def measure(method: str, data: Path, out: Path, num_query: int, *extra: str) -> tuple[float, int]:
    cmd = [sys.executable, __file__, "--worker", method, str(data), str(out), str(num_query), *extra]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds, peak = done.stdout.split()[-2:]
    return float(seconds), int(peak)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000])
    parser.add_argument("--output", default=str(ROOT / "benchmarks/results/bench_rerank.md"))
    parser.add_argument("--repeats", type=int, default=3, help="time = best of this many runs, for both")
    args = parser.parse_args()
    os.environ["BENCH_REPEATS"] = str(args.repeats)
    rows = []
    import torch

    header = describe_machine(numpy=np.__version__, torch=torch.__version__)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            data = Path(tmp) / f"x{n}.npy"
            np.save(data, clustered(n, DIM, seed=n))
            ref_s, ref_mem = measure("reference", data, Path(tmp) / "ref.npy", n // 2)
            fast_s, fast_mem = measure("exact", data, Path(tmp) / "fast.npy", n // 2)
            diff = float(np.abs(np.load(Path(tmp) / "ref.npy") - np.load(Path(tmp) / "fast.npy")).max())
            rows.append(f"| {n} | {n // 2} x {n - n // 2} | {ref_s:.1f} | {fast_s:.2f} | **{ref_s / fast_s:.1f}x** "
                        f"| {ref_mem / 2**20:.0f} | {fast_mem / 2**20:.0f} | {fast_mem / ref_mem:.2f} | {diff:.1e} |")
            print(rows[-1], flush=True)
    text = "\n".join([
        "# bench_rerank: exact k-reciprocal re-ranking vs the plain reference",
        "",
        f"Machine: {header} (at the start); load average at the end {os.getloadavg()[0]:.1f}.",
        "",
        f"Inputs: N = queries + gallery (half each), {DIM}-D L2-normalised clustered features (clusters of ~10), "
        "k1 = 20, k2 = 6, lambda = 0.3, same inputs for both in the same run. Reference: "
        "tests/reference_rerank.py (plain numpy, one row at a time; its time includes its input distance "
        "matrices). Fast: pipeline.retrieval.rerank.k_reciprocal_rerank, numpy backend. Time: best of "
        f"{args.repeats} runs for both (the machine is shared, see the load average). Peak memory: peak RSS "
        "(ru_maxrss) of a fresh process less its RSS before the call. Goal: >= 20x at N = 10k on 2 cores, "
        "max |diff| <= 1e-4.",
        "",
        "| N | queries x gallery | reference s | fast s | speed-up | reference peak MiB | fast peak MiB | memory ratio | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Reproduce: `.venv/bin/python benchmarks/bench_rerank.py --sizes {' '.join(map(str, args.sizes))} "
        f"--repeats {args.repeats}`",
        "",
    ])
    from pipeline.core.io_utils import write_text

    write_text(args.output, text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]), sys.argv[6:])
    else:
        main()
