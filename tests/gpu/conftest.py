"""GPU tests: every test here is marked ``gpu`` and skipped, with the reason, where torch sees
no CUDA device (CI, laptops). On a GPU machine `bash benchmarks/gpu_check.sh` runs them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# Determinism for the resume test; must be set before cuBLAS starts (tests only: it costs speed).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the CPU tests' data and references

NO_CUDA = (
    "needs a CUDA GPU: torch.cuda.is_available() is False here "
    "(run `bash benchmarks/gpu_check.sh` on a GPU machine)"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=NO_CUDA)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cuda() -> torch.device:
    return torch.device("cuda")


@pytest.fixture(params=["cupy", "torch"])
def gpu_xp(request: pytest.FixtureRequest) -> str:
    """The two GPU array backends of the re-ranking (cupy skipped where it cannot see the GPU)."""
    from pipeline.retrieval.backend import _cupy

    if request.param == "cupy" and _cupy() is None:
        pytest.skip("cupy is not installed or sees no GPU")
    return request.param
