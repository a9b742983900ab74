"""Sparse k-reciprocal re-ranking: time and peak memory at N = 20k and 85k, top-10 agreement at 10k.

85k is the DIGIX 2020 final round (55,168 queries + 29,758 gallery images); every size keeps
that query/gallery ratio. 256-D L2-normalised clustered features, k1 = 20, k2 = 6, lambda =
0.3, 100 candidates. Each run is a fresh process (see bench_rerank.py: peak memory = peak RSS
less the RSS before the call). Agreement: the share of exact mode's top 10 that sparse mode's
top 10 also holds, per query, averaged, on the same 10k inputs.

    .venv/bin/python benchmarks/bench_rerank_sparse.py [--sizes 20000 84926]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rerank import DIM, ROOT, clustered, measure  # noqa: E402
from harness import describe_machine  # noqa: E402

DIGIX_QUERIES, DIGIX_GALLERY = 55_168, 29_758
CANDIDATES = 100


def num_queries(n: int) -> int:
    return round(n * DIGIX_QUERIES / (DIGIX_QUERIES + DIGIX_GALLERY))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, DIGIX_QUERIES + DIGIX_GALLERY])
    parser.add_argument("--agreement-size", type=int, default=10_000)
    parser.add_argument("--output", default=str(ROOT / "benchmarks/results/bench_rerank_sparse.md"))
    args = parser.parse_args()
    import torch

    header = describe_machine(numpy=np.__version__, torch=torch.__version__)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        n = args.agreement_size
        data = Path(tmp) / "agree.npy"
        np.save(data, clustered(n, DIM, seed=n))
        exact_s, exact_mem = measure("exact", data, Path(tmp) / "exact.npy", num_queries(n))
        sparse_s, sparse_mem = measure("sparse", data, Path(tmp) / "sparse.npy", num_queries(n), str(CANDIDATES))
        full = np.load(Path(tmp) / "exact.npy")
        top_exact = np.argsort(full, axis=1, kind="stable")[:, :10]
        top_sparse = np.load(Path(tmp) / "sparse.idx.npy")[:, :10]
        agreement = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_exact, top_sparse)])
        rows.append(f"| {n} | {num_queries(n)} x {n - num_queries(n)} | {sparse_s:.1f} | {sparse_mem / 2**30:.2f} "
                    f"| exact: {exact_s:.1f} s, {exact_mem / 2**30:.2f} GiB; top-10 agreement **{agreement:.2%}** |")
        print(rows[-1], flush=True)
        for n in args.sizes:
            data = Path(tmp) / f"x{n}.npy"
            np.save(data, clustered(n, DIM, seed=n))
            seconds, peak = measure("sparse", data, Path(tmp) / "sparse.npy", num_queries(n), str(CANDIDATES))
            rows.append(f"| {n} | {num_queries(n)} x {n - num_queries(n)} | **{seconds:.1f}** | **{peak / 2**30:.2f}** "
                        f"| {seconds / sparse_s:.1f}x the 10k time for {(n / args.agreement_size) ** 2:.0f}x the pairs |")
            print(rows[-1], flush=True)
    text = "\n".join([
        "# bench_rerank_sparse: sparse k-reciprocal re-ranking",
        "",
        f"Machine: {header} (at the start); load average at the end {os.getloadavg()[0]:.1f}.",
        "",
        f"Inputs: {DIM}-D L2-normalised clustered features (clusters of ~10), queries : gallery = "
        f"{DIGIX_QUERIES} : {DIGIX_GALLERY} (DIGIX 2020 final round), k1 = 20, k2 = 6, lambda = 0.3, "
        f"{CANDIDATES} candidates per query, numpy backend. Peak memory: peak RSS (ru_maxrss) of a fresh "
        "process less its RSS before the call. Goals: at 85k under 10 minutes and under 8 GB on 2 cores; "
        "top-10 agreement with exact mode at 10k >= 99%.",
        "",
        "| N | queries x gallery | sparse s | sparse peak GiB | notes |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "Reproduce: `.venv/bin/python benchmarks/bench_rerank_sparse.py`",
        "",
    ])
    from pipeline.core.io_utils import write_text

    write_text(args.output, text)


if __name__ == "__main__":
    main()
