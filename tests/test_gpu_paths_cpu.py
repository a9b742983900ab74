"""The CPU halves of paths that tests/gpu/ runs on CUDA: a launcher-started run of world size 1
joins a process group (gloo here, NCCL on a GPU) and trains exactly like a plain run; the
re-ranking backend falls back from a cupy whose kernels cannot run."""

from __future__ import annotations

import socket
import sys
import types

import numpy as np
import pytest
import torch.distributed as dist

from pipeline.core.errors import ConfigError
from pipeline.retrieval import backend
from pipeline.train.distributed import DistInfo, init_distributed
from test_train_loop import assert_same, run, tiny_recipe, weights


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def launched(monkeypatch):
    """The environment torchrun gives its only process; the group is left again afterwards."""
    for name, value in {
        "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
    }.items():
        monkeypatch.setenv(name, value)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_plain_run_joins_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed("cpu")
    assert info == DistInfo() and not info.enabled and not dist.is_initialized()


def test_launched_world_size_one_joins_gloo_and_trains_like_a_plain_run(tmp_path, launched, caplog):
    recipe = tiny_recipe(epochs=1)
    run(recipe, tmp_path / "plain")
    with caplog.at_level("INFO"):
        info = init_distributed("cpu")
    assert dist.is_initialized() and dist.get_backend() == "gloo"
    assert info.joined and info.enabled and (info.rank, info.world_size) == (0, 1)
    assert "joined the gloo process group: rank 0 of 1" in caplog.text
    run(recipe, tmp_path / "ddp", info=info)  # DDP over one process, all-reduces included
    assert_same(weights(tmp_path / "plain"), weights(tmp_path / "ddp"))


def fake_cupy(kernels_run: bool) -> types.ModuleType:
    """A cupy that sees one GPU; its kernels fail as a cupy built for another CUDA's do."""
    module = types.ModuleType("cupy")
    module.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    module.int64 = np.int64

    def arange(n: int, dtype=None) -> np.ndarray:
        if not kernels_run:
            raise RuntimeError("CuPy failed to load libnvrtc.so.12")
        return np.arange(n, dtype=dtype)

    module.arange = arange
    return module


@pytest.mark.parametrize("kernels_run", [True, False])
def test_cupy_is_used_only_when_its_kernels_run(monkeypatch, kernels_run):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(kernels_run))
    monkeypatch.setattr(backend, "_cuda_available", lambda: False)
    backend._cupy.cache_clear()
    try:
        assert backend.get_ops("auto", "auto").name == ("cupy" if kernels_run else "numpy")
        if not kernels_run:
            with pytest.raises(ConfigError, match="backend 'cupy' asked for, but cupy or a GPU is missing"):
                backend.get_ops("cupy")
    finally:
        backend._cupy.cache_clear()
