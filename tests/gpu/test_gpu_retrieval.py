"""Re-ranking and search on CUDA (cupy and torch) against the CPU paths that CI checks."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.retrieval.rerank import k_reciprocal_rerank
from pipeline.retrieval.rerank_sparse import sparse_rerank
from pipeline.retrieval.search import search_topk
from test_rerank import clustered, reference
from test_search import brute

pytestmark = pytest.mark.gpu


def test_exact_rerank_on_gpu_equals_the_reference(gpu_xp):
    x = clustered(300, 32, 20, 1)
    expected = reference(x[:150], x[150:])
    got = k_reciprocal_rerank(x[:150], x[150:], xp=gpu_xp, device="cuda")
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_exact_rerank_on_gpu_equals_cpu_over_several_row_blocks(gpu_xp):
    # 5000^2 > 2^24 elements: the distance pass runs in several blocks, as at real sizes.
    x = clustered(5000, 128, 400, 12)
    cpu = k_reciprocal_rerank(x[:1500], x[1500:], xp="numpy")
    gpu = k_reciprocal_rerank(x[:1500], x[1500:], xp=gpu_xp, device="cuda")
    np.testing.assert_allclose(gpu, cpu, atol=1e-4, rtol=0)


def test_half_precision_on_gpu_within_its_documented_bound(gpu_xp):
    x = clustered(300, 32, 20, 1)
    got = k_reciprocal_rerank(x[:150], x[150:], xp=gpu_xp, device="cuda", half=True)
    np.testing.assert_allclose(got, reference(x[:150], x[150:]), atol=2e-3, rtol=0)  # float16 V


def test_sparse_rerank_on_gpu_agrees_with_cpu_top10(gpu_xp):
    x = clustered(6000, 64, 500, 13)
    q, g = x[:2000], x[2000:]
    cpu_idx, cpu_dist = sparse_rerank(q, g, candidates=10, xp="numpy")
    gpu_idx, gpu_dist = sparse_rerank(q, g, candidates=10, xp=gpu_xp, device="cuda")
    # Same float64-ordered neighbour lists on both; only the float32 summation order of the
    # overlaps differs (atomics on the GPU), which can swap exact near-ties.
    same_set = (np.sort(cpu_idx, 1) == np.sort(gpu_idx, 1)).all(1)
    assert same_set.mean() >= 0.999, f"top-10 sets agree on {same_set.mean():.4f} of the queries"
    np.testing.assert_allclose(gpu_dist, cpu_dist, atol=1e-5, rtol=0)


def test_faiss_gpu_search_equals_cpu_search():
    faiss = pytest.importorskip("faiss")
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        pytest.skip("this faiss has no GPU support (no faiss-gpu wheel for CUDA 13 fits the carried 64 MiB)")
    rng = np.random.default_rng(3)
    q, g = rng.normal(size=(500, 64)).astype(np.float32), rng.normal(size=(20000, 64)).astype(np.float32)
    idx, dist = search_topk(q, g, 20, backend="faiss")
    full = brute(q, g, "cosine")
    np.testing.assert_allclose(dist, np.take_along_axis(full, idx, 1), atol=1e-5)
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :20], atol=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_torch_search_on_cuda_equals_brute_force(metric):
    # The GPU search that runs where faiss has no GPU build: search.py's torch path on CUDA.
    rng = np.random.default_rng(4)
    q, g = rng.normal(size=(700, 48)).astype(np.float32), rng.normal(size=(30000, 48)).astype(np.float32)
    idx, dist = search_topk(q, g, 15, metric=metric, backend="torch")
    full = brute(q, g, metric)
    np.testing.assert_allclose(dist, np.take_along_axis(full, idx, 1), atol=1e-4)
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :15], atol=1e-4)
