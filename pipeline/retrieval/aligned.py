"""AlignedReID's aligned local distance (Zhang et al. 2017), for its local triplet loss
(pipeline/losses/aligned_triplet.py) and for retrieval on candidate lists (local_rescore.py).

Local features are (N, S, D): one D-vector per horizontal stripe, top to bottom. The aligned
distance of two images is the length of the shortest path from the top-left to the
bottom-right of their S x S stripe-to-stripe distance matrix, moving only right or down,
with each element distance d normalised as (e^d - 1) / (e^d + 1). No library has this
dynamic programme, so it is written here: it runs over the stripes (S^2 steps of tensor
ops) and is vectorised over all pairs at once, so it serves both training (autograd) and
the retrieval stage's candidate lists.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def element_distances(x: Tensor, y: Tensor) -> Tensor:
    """(P, S, T) normalised Euclidean distances between the stripes of x (P, S, D) and y (P, T, D).

    Stripes are L2-normalised first, so d lies in [0, 2] and the normalisation below never
    saturates (raw features make d large, where its gradient vanishes).
    """
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    return unit_element_distances(x @ y.transpose(1, 2))


def unit_element_distances(dots: Tensor) -> Tensor:
    """Normalised element distances of unit vectors from their dot products."""
    d = (2 - 2 * dots).clamp_min(1e-12).sqrt()  # clamped: sqrt's gradient is infinite at 0
    return torch.tanh(d / 2)  # = (e^d - 1) / (e^d + 1)


def shortest_path(dist: Tensor) -> Tensor:
    """(P,) length of the shortest monotone (right/down) path through each (P, S, T) matrix."""
    _, rows, cols = dist.shape
    previous: list[Tensor] = []
    for i in range(rows):
        current: list[Tensor] = []
        for j in range(cols):
            if i == 0 and j == 0:
                best = dist[:, 0, 0]
            elif i == 0:
                best = current[j - 1] + dist[:, 0, j]
            elif j == 0:
                best = previous[0] + dist[:, i, 0]
            else:
                best = torch.minimum(previous[j], current[j - 1]) + dist[:, i, j]
            current.append(best)
        previous = current
    return previous[-1]


def aligned_distance(x: Tensor, y: Tensor) -> Tensor:
    """(P,) aligned local distance of each pair of local features x[p], y[p] ((P, S, D) each)."""
    if x.ndim != 3 or y.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(f"local features must be (P, S, D) pairs, got {tuple(x.shape)} and {tuple(y.shape)}")
    return shortest_path(element_distances(x, y))
