"""Pseudo-labels of unlabelled features: DBSCAN on the k-reciprocal Jaccard distance (SpCL, MMT).

The distance is the re-ranking's own Jaccard term (``pipeline.retrieval.rerank.jaccard_distance``),
every image against every other. DBSCAN (scikit-learn, precomputed metric) groups the images
whose neighbourhoods overlap; an image with fewer than ``min_samples`` neighbours within ``eps``
and no core neighbour is noise (-1) and gets no pseudo-label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import DBSCAN
from sklearn.metrics import normalized_mutual_info_score

from pipeline.core.errors import DataError
from pipeline.retrieval.rerank import jaccard_distance

NOISE = -1


def eps_from_distances(distance: np.ndarray, rho: float) -> float:
    """MMT's radius: the mean of the smallest ``rho`` share of the pairwise distances.

    Pairs at exactly 0 (identical k-reciprocal neighbourhoods) are left out, as MMT does: with
    many of them the radius would fall to 0, which DBSCAN refuses.
    """
    pairs = distance[np.triu_indices(distance.shape[0], 1)]
    pairs = pairs[pairs > 0]
    if pairs.size == 0:
        raise DataError("every pair of target images is at Jaccard distance 0: nothing to cluster; set adapt.eps")
    count = max(1, round(rho * pairs.size))
    return float(np.partition(pairs, count - 1)[:count].mean())


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # (N,) int64 cluster ids 0..C-1, NOISE for the images left out
    eps: float

    @property
    def num_clusters(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size else 0

    @property
    def kept(self) -> np.ndarray:
        """Rows that carry a pseudo-label (the noise left out)."""
        return np.flatnonzero(self.labels != NOISE)

    @property
    def noise_fraction(self) -> float:
        return float(np.mean(self.labels == NOISE))

    def summary(self) -> dict[str, float]:
        sizes = np.bincount(self.labels[self.kept], minlength=self.num_clusters)
        return {
            "clusters": float(self.num_clusters), "noise_fraction": self.noise_fraction,
            "images_kept": float(self.kept.size), "largest_cluster": float(sizes.max(initial=0)), "eps": self.eps,
        }


def cluster_features(
    features: np.ndarray, *, k1: int, k2: int, min_samples: int, eps: float | None = None, rho: float = 1.6e-3
) -> Clustering:
    """DBSCAN pseudo-labels of L2-normalised features (N, D); ``eps`` None: ``eps_from_distances``."""
    distance = jaccard_distance(features, k1, k2)
    radius = eps_from_distances(distance, rho) if eps is None else float(eps)
    labels = DBSCAN(eps=radius, min_samples=min_samples, metric="precomputed").fit_predict(distance)
    return Clustering(labels=labels.astype(np.int64), eps=radius)


def pseudo_label_quality(pseudo: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Purity and NMI of the pseudo-labels against true identities, over the images kept
    (benchmarks only: the adaptation itself never sees labels). Purity: the share of kept images
    whose cluster's most common identity is their own."""
    kept = pseudo != NOISE
    if not kept.any():
        return {"purity": float("nan"), "nmi": float("nan")}
    clusters, truth_ids = pseudo[kept], np.unique(np.asarray(truth)[kept], return_inverse=True)[1]
    table = np.zeros((clusters.max() + 1, truth_ids.max() + 1), dtype=np.int64)
    np.add.at(table, (clusters, truth_ids), 1)
    return {
        "purity": float(table.max(axis=1).sum() / kept.sum()),
        "nmi": float(normalized_mutual_info_score(truth_ids, clusters)),
    }
