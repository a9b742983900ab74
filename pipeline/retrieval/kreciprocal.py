"""The k-reciprocal core shared by exact and sparse re-ranking, written once against ``Ops``.

Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017, with
the conventions of the widely used public numpy code: squared Euclidean distance divided by
its row maximum; R(i) = the k1-reciprocal neighbours of i (i included); a candidate c in R(i)
adds its round(k1/2)-reciprocal set R'(c) when |R'(c) & R(i)| > 2/3 |R'(c)|; V(i, j) =
exp(-d(i, j)) normalised over the expanded set; local query expansion averages V over the k2
nearest neighbours (self included); Jaccard distance 1 - s / (2 - s) with s = sum_j min(V(a, j),
V(b, j)); final = (1 - lambda) * Jaccard + lambda * d.

Both modes share one streamed pass over distance blocks (``neighbour_pass``: neighbour lists
and row maxima) and build V as a sparse CSR array from the (N, K) neighbour lists, so memory
grows as N * K. Exact mode then fills the dense (Nq, Ng) result (``final_dense``); sparse mode
keeps only the non-zero overlaps (``overlap_nonzero``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.retrieval.backend import Array, Ops

# Work per chunk (array elements): bounds the temporaries of every chunked step.
BUDGET = 1 << 24


@dataclass
class SparseRows:
    """A CSR matrix (N x N) as flat arrays: entries sorted by (row, col)."""

    rows: Array
    cols: Array
    vals: Array
    row_ptr: Array  # (N + 1,)


def chunks(costs: np.ndarray, budget: int = BUDGET) -> list[tuple[int, int]]:
    """Split rows into consecutive (start, stop) runs whose summed cost stays within ``budget``."""
    bounds, start, total = [], 0, 0
    for row, cost in enumerate(costs.tolist()):
        if row > start and total + cost > budget:
            bounds.append((start, row))
            start, total = row, 0
        total += cost
    bounds.append((start, len(costs)))
    return bounds


def expand_segments(ops: Ops, starts: Array, counts: Array) -> tuple[Array, Array]:
    """For segments [start, start + count): (segment id, position) of every covered element."""
    owner = ops.repeat(ops.arange(counts.shape[0]), counts)
    offsets = ops.cumsum(counts) - counts
    positions = ops.arange(owner.shape[0]) - offsets[owner] + starts[owner]
    return owner, positions


def reciprocal_mask(ops: Ops, nbr: Array) -> Array:
    """mask[i, t] = True when i is among the neighbours of nbr[i, t] (both lists of width m)."""
    n = nbr.shape[0]
    rows = ops.arange(n)[:, None]
    forward = ops.sort((rows * n + nbr).reshape(-1))
    backward = (nbr * n + rows).reshape(-1)
    pos = ops.searchsorted(forward, backward)
    pos = ops.where(pos < forward.shape[0], pos, forward.shape[0] - 1)
    return (forward[pos] == backward).reshape(nbr.shape)


def build_v(
    ops: Ops,
    nbr: Array,
    k1: int,
    k2: int,
    pair_distance: Callable[[Array, Array], Array],
    value_dtype: str,
) -> SparseRows:
    """The k-reciprocal feature V, after local query expansion, as CSR.

    ``nbr`` (N, K >= max(k1 + 1, k2)) lists each row's neighbours by ascending distance (self
    first); ``pair_distance(rows, cols)`` returns the row-normalised squared distance of pairs.
    """
    n = nbr.shape[0]
    half = int(np.around(k1 / 2.0))
    full_nbr = nbr[:, : k1 + 1]
    half_nbr = nbr[:, : half + 1]
    full_mask = reciprocal_mask(ops, full_nbr)
    half_mask = reciprocal_mask(ops, half_nbr)
    half_len = ops.count(half_mask, 1)

    keys = []
    for start, stop in chunks(np.full(n, (k1 + 1) * (half + 2)), BUDGET // 4):
        rows = ops.arange(start, stop)
        own = full_nbr[start:stop]
        own_mask = full_mask[start:stop]
        own_keys = rows[:, None] * n + own
        r_keys = ops.sort(ops.where(own_mask, own_keys, -1).reshape(-1))
        cand = half_nbr[own]  # (rows, k1 + 1, half + 1): R'(c) for every c in the k1 list
        cand_mask = half_mask[own]
        cand_keys = rows[:, None, None] * n + cand
        pos = ops.searchsorted(r_keys, cand_keys.reshape(-1))
        pos = ops.where(pos < r_keys.shape[0], pos, r_keys.shape[0] - 1)
        in_r = (r_keys[pos] == cand_keys.reshape(-1)).reshape(cand.shape) & cand_mask
        overlap = ops.count(in_r, 2)
        # |R'(c) & R(i)| > 2/3 |R'(c)|, in integers (same outcome as the float rule).
        accept = own_mask & (3 * overlap > 2 * half_len[own])
        keys.append(ops.unique(ops.concat([own_keys[own_mask], cand_keys[accept[:, :, None] & cand_mask]])))
    key = ops.concat(keys)
    rows, cols = key // n, key % n
    weight = ops.exp(-pair_distance(rows, cols))
    vals = weight / ops.bincount(rows, weight, n)[rows]
    v = _csr(ops, rows, cols, vals, n)
    if k2 != 1:
        v = _local_query_expansion(ops, v, nbr[:, :k2], n)
    return SparseRows(v.rows, v.cols, ops.astype(v.vals, value_dtype), v.row_ptr)


def _csr(ops: Ops, rows: Array, cols: Array, vals: Array, n: int) -> SparseRows:
    counts = ops.bincount(rows, None, n)
    row_ptr = ops.concat([ops.zeros(1, "int64"), ops.cumsum(counts)])
    return SparseRows(rows, cols, vals, row_ptr)


def _local_query_expansion(ops: Ops, v: SparseRows, nbr: Array, n: int) -> SparseRows:
    """V(i) <- mean of V over the k2 nearest neighbours of i."""
    k2 = nbr.shape[1]
    row_len = ops.to_numpy(v.row_ptr[1:] - v.row_ptr[:-1])
    costs = row_len[ops.to_numpy(nbr)].sum(axis=1) * 3
    out_rows, out_cols, out_vals = [], [], []
    for start, stop in chunks(costs):
        src = nbr[start:stop].reshape(-1)
        owner, pos = expand_segments(ops, v.row_ptr[src], v.row_ptr[src + 1] - v.row_ptr[src])
        key = (start + owner // k2) * n + v.cols[pos]
        uniq, inverse = ops.unique_inverse(key)
        out_vals.append(ops.bincount(inverse, v.vals[pos], uniq.shape[0]) / k2)
        out_rows.append(uniq // n)
        out_cols.append(uniq % n)
    return _csr(ops, ops.concat(out_rows), ops.concat(out_cols), ops.concat(out_vals), n)


def _overlap_blocks(ops: Ops, v: SparseRows, num_query: int, row_cost: int):
    """Yield (start, stop, local key, shared) over blocks of query rows.

    local key = (query - start) * Ng + gallery; shared = min(V(q, j), V(g, j)) for one common
    column j, so summing ``shared`` per key gives s(q, g). Built from an inverted index of the
    gallery rows of V (entries by column): work = sum over a query's columns of their lengths.
    ``row_cost`` is added per query row when sizing blocks (for a dense per-block output).
    """
    n = v.row_ptr.shape[0] - 1
    num_gallery = n - num_query
    q_end = int(v.row_ptr[num_query])
    gal = v.rows >= num_query
    g_rows, g_cols, g_vals = v.rows[gal] - num_query, v.cols[gal], v.vals[gal]
    order = ops.argsort(g_cols)
    inv_rows, inv_vals = g_rows[order], g_vals[order]
    col_count = ops.bincount(g_cols, None, n)
    col_ptr = ops.cumsum(col_count) - col_count
    q_rows, q_cols, q_vals = v.rows[:q_end], v.cols[:q_end], v.vals[:q_end]
    pair_count = col_count[q_cols]
    costs = ops.to_numpy(ops.bincount(q_rows, pair_count, num_query)) * 3 + row_cost
    for start, stop in chunks(costs, BUDGET // 16):  # small blocks: the scatter stays in cache
        e0, e1 = int(v.row_ptr[start]), int(v.row_ptr[stop])
        owner, pos = expand_segments(ops, col_ptr[q_cols[e0:e1]], pair_count[e0:e1])
        shared = ops.astype(ops.minimum(q_vals[e0:e1][owner], inv_vals[pos]), "float32")
        yield start, stop, (q_rows[e0:e1][owner] - start) * num_gallery + inv_rows[pos], shared


def final_dense(ops: Ops, v: SparseRows, num_query: int, original: Array, lambda_value: float) -> Array:
    """Exact mode's (Nq, Ng) float32 final distance, written over ``original`` where it is float32.

    final = lambda * d + (1 - lambda) * (1 - s / (2 - s)): start from s = 0 everywhere, then
    subtract (1 - lambda) * s / (2 - s) block by block, so no second dense matrix is needed.
    """
    num_gallery = v.row_ptr.shape[0] - 1 - num_query
    out = ops.astype(original, "float32")
    out *= lambda_value
    out += 1.0 - lambda_value
    for start, stop, key, shared in _overlap_blocks(ops, v, num_query, num_gallery):
        s = ops.astype(ops.bincount(key, shared, (stop - start) * num_gallery), "float32")
        s = s.reshape(stop - start, num_gallery)
        s /= 2.0 - s
        s *= 1.0 - lambda_value
        out[start:stop] -= s
    return out


def overlap_nonzero(ops: Ops, v: SparseRows, num_query: int) -> tuple[Array, Array]:
    """The non-zero s(q, g) only: (sorted keys q * Ng + g, values). Memory O(non-zeros)."""
    num_gallery = v.row_ptr.shape[0] - 1 - num_query
    keys, values = [], []
    for start, _, key, shared in _overlap_blocks(ops, v, num_query, 0):
        uniq, inverse = ops.unique_inverse(key)
        keys.append(uniq + start * num_gallery)
        values.append(ops.astype(ops.bincount(inverse, shared, uniq.shape[0]), "float32"))
    return ops.concat(keys), ops.concat(values)


def final_distance(overlap: Array, original: Array, lambda_value: float) -> Array:
    """(1 - lambda) * (1 - s / (2 - s)) + lambda * d, in place on ``overlap``."""
    jaccard = overlap
    jaccard /= 2.0 - overlap  # s / (2 - s); ``overlap`` and ``jaccard`` are one array
    jaccard *= -(1.0 - lambda_value)
    jaccard += (1.0 - lambda_value)
    jaccard += lambda_value * original
    return jaccard


@dataclass
class Neighbours:
    """What one dense pass over row blocks yields; memory O(N * width) plus the optional outputs."""

    nbr: Array  # (N, width) neighbours by ascending distance, self first
    row_max: Array  # (N,) largest squared distance of each row (the published normalisation)
    original: Array | None  # (Nq, Ng) row-normalised squared distance, exact mode only
    gallery_candidates: Array | None  # (Nq, c) nearest gallery items of each query, sparse mode


def pair_sqdist(ops: Ops, x: Array, sq_norm: Array, rows: Array, cols: Array) -> Array:
    """Squared Euclidean distance of (row, col) pairs from the features, in the dtype of ``x``."""
    per_pair = max(1, (1 << 20) // x.shape[1])  # small chunks: the gathered rows stay in cache
    parts = []
    for start in range(0, rows.shape[0], per_pair):
        r, c = rows[start:start + per_pair], cols[start:start + per_pair]
        sq = sq_norm[r] + sq_norm[c] - 2.0 * ops.rowdot(x[r], x[c])
        parts.append(ops.where(r == c, 0.0, ops.clip_min_(sq, 0.0)))
    return ops.concat(parts) if parts else sq_norm[:0]


def neighbour_pass(
    ops: Ops,
    x32: Array,
    x_exact: Array | None,
    num_query: int,
    width: int,
    keep_original: str | None = None,
    gallery_candidates: int = 0,
) -> Neighbours:
    """One pass over (rows x N) float32 distance blocks: neighbour lists and row maxima.

    The blocks are float32 (BLAS speed). Where ``x_exact`` (float64 features) is given, the
    neighbour order is made the float64 order: a row whose float32 top list has two values
    closer than twice the float32 error bound is re-measured in float64 (see ``_refine``), as
    float32 rounding would swap such near-tied neighbours. ``keep_original`` (a dtype) keeps
    the query x gallery block; ``gallery_candidates`` keeps each query's nearest gallery items.
    """
    n, dim = x32.shape
    num_gallery = n - num_query
    sq32 = (x32 * x32).sum(1)
    select = min(n, width + 8) if x_exact is not None else width
    nbr = ops.empty((n, select), "int64")
    values = ops.empty((n, select), "float32")
    row_max = ops.empty(n, "float32")
    original = ops.empty((num_query, num_gallery), keep_original) if keep_original else None
    candidates = ops.empty((num_query, gallery_candidates), "int64") if gallery_candidates else None
    # One product gives |x_j|^2 - 2 x_i.x_j: [x_i, 1] . [-2 x_j, |x_j|^2]. That is the row's
    # squared distances less the constant |x_i|^2, which changes neither order nor argmax, and
    # costs no elementwise pass over the (rows x N) block.
    left = ops.empty((n, dim + 1), "float32")
    left[:, :dim] = x32
    left[:, dim] = 1.0
    right = ops.empty((n, dim + 1), "float32")
    right[:, :dim] = -2.0 * x32
    right[:, dim] = sq32
    bounds = chunks(np.full(n, n), BUDGET)
    buffer = ops.empty((bounds[0][1] - bounds[0][0], n), "float32")
    for start, stop in bounds:
        rows = ops.arange(start, stop)
        block = ops.matmul_into(left[start:stop], right, buffer[: stop - start])
        own = sq32[start:stop]
        block[rows - start, rows] = -own  # self-distance is exactly zero
        top_values, nbr[start:stop] = ops.topk_smallest(block, select)
        values[start:stop] = top_values + own[:, None]
        row_max[start:stop] = ops.row_max(block) + own
        if start < num_query:
            q_stop = min(stop, num_query)
            part = block[: q_stop - start, num_query:]
            if original is not None:
                part += own[: q_stop - start, None]
                ops.clip_min_(part, 0.0)
                part /= row_max[start:q_stop, None]
                original[start:q_stop] = ops.astype(part, keep_original)
            if candidates is not None:
                candidates[start:q_stop] = ops.topk_smallest(part, gallery_candidates)[1]
    if x_exact is not None and select < n:
        nbr = _refine(ops, x_exact, sq32, nbr, values, width)
    return Neighbours(nbr[:, :width], row_max, original, candidates)


def _refine(ops: Ops, x: Array, sq32: Array, nbr: Array, values: Array, width: int) -> Array:
    """Make the first ``width`` neighbours follow float64 distances.

    ``error`` bounds the float32 error of a block entry (dot-product bound (dim + 2) * 2^-24 *
    sum of |terms|, terms = 2 x_i.x_j and |x_j|^2). A row whose first width + 1 float32 values
    are all more than 2 * error apart is already in float64 order, with nothing outside the
    list able to intrude. Other rows are re-measured in float64 over their candidates; if the
    width-th is then not clear of the list's last float32 value, over the whole row.
    """
    n, select = nbr.shape
    dim = x.shape[1]
    norm = ops.xp.sqrt(sq32)
    error = (dim + 2) * 2.0**-24 * (2.0 * norm * norm.max() + sq32.max())
    gaps = values[:, 1 : width + 1] - values[:, :width]
    unclear = ops.to_numpy(ops.count(gaps <= 2.0 * error[:, None], 1) > 0)
    rows_np = np.flatnonzero(unclear)
    if rows_np.size == 0:
        return nbr
    rows = ops.asarray(rows_np, "int64")
    sub = nbr[rows]
    sq_norm = (x * x).sum(1)
    pair_rows = ops.repeat(rows, ops.zeros(rows.shape[0], "int64") + select)
    exact = pair_sqdist(ops, x, sq_norm, pair_rows, sub.reshape(-1)).reshape(rows.shape[0], select)
    order = ops.argsort_rows(exact)
    sub = ops.take_rows(sub, order)
    kth = ops.take_rows(exact, order[:, width - 1 : width])[:, 0]
    nbr[rows] = sub
    clear = ops.to_numpy(kth < values[rows, select - 1] - error[rows])
    for row in rows_np[~clear]:
        full = sq_norm[row] + sq_norm - 2.0 * (x @ x[row])
        ops.clip_min_(full, 0.0)
        full[row] = 0.0
        nbr[row] = ops.topk_smallest(full[None, :], select)[1][0]
    return nbr
