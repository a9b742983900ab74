"""Approximate neighbour lists for sparse re-ranking of galleries past a few hundred thousand images.

The exact neighbour pass (``kreciprocal.neighbour_pass``) multiplies every image with every other:
at a million 256-d features that is 5e14 flops, over an hour on 2 cores. Here faiss's inverted
file (``IndexIVFFlat``, L2) gives the same three things from a fraction of the products:

- each image's ``width`` nearest images (self first), searched over ``probe`` of the index's
  lists (faiss's own guideline for the list count: 4 sqrt(N));
- each query's ``candidates`` nearest gallery items, from a second index over the gallery alone
  that shares the first one's trained quantizer;
- each row's largest squared distance (the published normalisation) as the maximum over a seeded
  uniform sample of ``row_max_sample`` columns: a lower bound of the true maximum, so a row's
  normalised distances come out slightly above the exact ones (the measured gap:
  benchmarks/results/bench_rerank_sparse.md).

A neighbour the search misses changes that image's k-reciprocal set as a missed neighbour does,
not the algorithm: everything after the lists is sparse mode's code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.retrieval.backend import Ops
from pipeline.retrieval.kreciprocal import Neighbours

# Rows per block of the sampled row-maximum product: bounds its (rows x sample) block.
_SAMPLE_BLOCK_ELEMENTS = 1 << 25


@dataclass(frozen=True)
class IVFSearch:
    """How the approximate lists are searched. ``lists`` None: 4 sqrt(N), faiss's guideline."""

    probe: int  # inverted lists visited per search (rerank.ivf_probe)
    lists: int | None = None
    row_max_sample: int = 8192  # columns the row maximum is taken over
    train_per_list: int = 64  # training points per list (faiss warns below 39)
    seed: int = 0


def _index(faiss, quantizer, dim: int, lists: int):
    return faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_L2)


def _search_full(index, queries: np.ndarray, k: int, probe: int) -> np.ndarray:
    """(len(queries), k) ids; rows whose probed lists hold fewer than k items (faiss pads them
    with -1) are searched again over twice the lists, up to all of them."""
    index.nprobe = min(probe, index.nlist)
    ids = index.search(queries, k)[1]
    short = np.flatnonzero((ids < 0).any(axis=1))
    while short.size and index.nprobe < index.nlist:
        index.nprobe = min(2 * index.nprobe, index.nlist)
        ids[short] = index.search(queries[short], k)[1]
        short = short[(ids[short] < 0).any(axis=1)]
    return ids.astype(np.int64)


def sampled_row_max(x: np.ndarray, sample: int, rng: np.random.Generator) -> np.ndarray:
    """(N,) largest squared distance of each row to ``sample`` uniformly drawn columns (all if fewer)."""
    n = x.shape[0]
    cols = x[np.sort(rng.choice(n, size=min(sample, n), replace=False))]
    sq_rows, sq_cols = (x * x).sum(1), (cols * cols).sum(1)
    out = np.empty(n, dtype=np.float32)
    step = max(1, _SAMPLE_BLOCK_ELEMENTS // cols.shape[0])
    for start in range(0, n, step):
        block = x[start:start + step] @ (-2.0 * cols).T
        block += sq_cols
        out[start:start + step] = block.max(axis=1) + sq_rows[start:start + step]
    return np.maximum(out, 0.0)


def self_first(nbr: np.ndarray) -> np.ndarray:
    """Each row's own index first, as the exact pass has it (duplicates can outrank self in the
    search), the rest in their order, the list's length kept."""
    own = np.arange(nbr.shape[0])[:, None]
    others = nbr != own
    # a stable sort of "is not self" moves self to the front and keeps the other neighbours' order
    order = np.argsort(others, axis=1, kind="stable")
    moved = np.take_along_axis(nbr, order, axis=1)
    missing = others.all(axis=1)  # self not found at all: it takes the first place, the last drops
    moved[missing] = np.concatenate([own[missing], nbr[missing, :-1]], axis=1)
    return moved


def ivf_neighbour_pass(
    ops: Ops, x: np.ndarray, num_query: int, width: int, gallery_candidates: int, search: IVFSearch
) -> Neighbours:
    """``kreciprocal.neighbour_pass``'s outputs for sparse mode, from two IVF searches (module docstring)."""
    import faiss  # a project dependency; imported here so exact mode never loads it

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, dim = x.shape
    rng = np.random.default_rng(search.seed)
    lists = search.lists or max(1, int(4 * math.sqrt(n)))
    lists = min(lists, n)
    quantizer = faiss.IndexFlatL2(dim)
    everything = _index(faiss, quantizer, dim, lists)
    everything.train(x[rng.choice(n, size=min(n, lists * search.train_per_list), replace=False)])
    everything.add(x)
    nbr = _search_full(everything, x, width, search.probe)
    gallery = _index(faiss, quantizer, dim, lists)  # the same trained quantizer: no training
    gallery.add(x[num_query:])
    candidates = _search_full(gallery, x[:num_query], gallery_candidates, search.probe)
    row_max = sampled_row_max(x, search.row_max_sample, rng)
    return Neighbours(
        nbr=ops.asarray(self_first(nbr), "int64"), row_max=ops.asarray(row_max, "float32"),
        original=None, gallery_candidates=ops.asarray(candidates, "int64"),
    )
