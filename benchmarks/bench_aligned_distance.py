"""AlignedReID aligned local distance on candidate lists: pairs/s of the batched, vectorised
pass (pipeline/retrieval/local_rescore.py) against a plain per-pair loop.

Random local features (queries x stripes x D, gallery x stripes x D), C candidates per query.
The per-pair loop computes each pair alone with plain numpy (its element-distance matrix and
the shortest path over the stripes with two Python loops): what one writes without vectorising.
It runs on the first --loop-pairs pairs and its rate is taken from those; both agree to 1e-5.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_aligned_distance.py [--out benchmarks/results/bench_aligned_distance.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import describe_machine  # noqa: E402

from pipeline.retrieval.local_rescore import candidate_local_distances  # noqa: E402


def per_pair(query: np.ndarray, gallery: np.ndarray) -> float:
    """One pair, plain numpy: normalised stripe distances, then the shortest monotone path."""
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    d = np.sqrt(np.maximum(((q[:, None, :] - g[None, :, :]) ** 2).sum(-1), 1e-12))
    d = (np.exp(d) - 1) / (np.exp(d) + 1)
    rows, cols = d.shape
    path = np.zeros_like(d)
    for i in range(rows):
        for j in range(cols):
            before = min(path[i - 1, j] if i else np.inf, path[i, j - 1] if j else np.inf)
            path[i, j] = d[i, j] + (0.0 if i == 0 and j == 0 else before)
    return float(path[-1, -1])


def bench(queries: int, gallery: int, candidates: int, stripes: int, dim: int, loop_pairs: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(queries, stripes, dim)).astype(np.float32)
    g = rng.normal(size=(gallery, stripes, dim)).astype(np.float32)
    indices = np.stack([rng.permutation(gallery)[:candidates] for _ in range(queries)])
    started = time.perf_counter()
    batched = candidate_local_distances(q, g, indices)
    batched_s = time.perf_counter() - started
    rows = np.repeat(np.arange(queries), candidates)[:loop_pairs]
    cols = indices.reshape(-1)[:loop_pairs]
    started = time.perf_counter()
    looped = np.array([per_pair(q[r], g[c]) for r, c in zip(rows, cols)])
    loop_s = time.perf_counter() - started
    return {
        "pairs": queries * candidates, "batched_s": batched_s, "batched_rate": queries * candidates / batched_s,
        "loop_rate": loop_pairs / loop_s, "max_diff": float(np.abs(batched.reshape(-1)[:loop_pairs] - looped).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--gallery", type=int, default=2000)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--stripes", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--loop-pairs", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = [
        "# bench_aligned_distance: AlignedReID aligned local distance on candidate lists",
        "",
        f"Machine: {describe_machine(torch=torch.__version__, numpy=np.__version__)}; torch threads 1. "
        "The 2 cores were shared with other engineers' jobs: rates are rough.",
        "",
        f"Inputs: {args.queries} queries x {args.candidates} candidates from {args.gallery} gallery items, "
        f"random local features (stripes x {args.dim}), float32. Batched: `candidate_local_distances` "
        f"(16384 pairs per batch: one matrix product per batch of queries, the shortest path vectorised over the pairs). Loop: one pair at a time in plain "
        f"numpy, on the first {args.loop_pairs} pairs.",
        "",
        "| stripes | pairs | batched s | batched pairs/s | per-pair loop pairs/s | speed-up | max abs diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for stripes in args.stripes:
        r = bench(args.queries, args.gallery, args.candidates, stripes, args.dim, args.loop_pairs)
        lines.append(
            f"| {stripes} | {r['pairs']} | {r['batched_s']:.2f} | {r['batched_rate']:,.0f} | {r['loop_rate']:,.0f} "
            f"| {r['batched_rate'] / r['loop_rate']:.0f}x | {r['max_diff']:.1e} |"
        )
        print(lines[-1], flush=True)
    lines += ["", "Reproduce: `OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_aligned_distance.py "
              "--out benchmarks/results/bench_aligned_distance.md`", ""]
    if args.out:
        args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
