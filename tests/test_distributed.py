"""torchrun support on the CPU: a plain run joins nothing; a one-process gloo group runs the DDP path."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
from torch import nn

from pipeline.core.errors import ConfigError
from pipeline.train.distributed import DistInfo, all_finite, average_gradients, barrier, init_distributed, resolve_device, wrap_model


def test_devices_resolve_and_a_missing_cuda_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="extract.device: cuda was asked for"):
        resolve_device("cuda", "extract.device")


def test_a_plain_run_is_a_single_process_and_every_helper_does_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed("cpu")
    assert info == DistInfo() and info.is_main and not info.enabled
    model = nn.Linear(2, 1)
    assert wrap_model(model, info) is model
    assert all_finite(torch.tensor([1.0, 2.0]), info) and not all_finite(torch.tensor([1.0, float("nan")]), info)
    model.weight.grad = torch.full_like(model.weight, 3.0)
    average_gradients([model.weight], info)
    assert torch.equal(model.weight.grad, torch.full_like(model.weight, 3.0))
    barrier(info)  # returns at once: no group to wait for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_under_a_launcher_one_process_joins_a_gloo_group(monkeypatch):
    for key, value in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(key, value)
    info = init_distributed("cpu")
    try:
        assert info == DistInfo(rank=0, world_size=1, device=torch.device("cpu"), joined=True)
        assert info.enabled and dist.get_backend() == "gloo"
        assert isinstance(wrap_model(nn.Linear(2, 1), info), nn.parallel.DistributedDataParallel)
        assert all_finite(torch.tensor(1.0), info) and not all_finite(torch.tensor(float("inf")), info)
        centre = nn.Parameter(torch.zeros(2))
        centre.grad = torch.tensor([2.0, 4.0])
        average_gradients([centre], info)  # the sum over one rank, divided by one
        assert torch.equal(centre.grad, torch.tensor([2.0, 4.0]))
        barrier(info)
    finally:
        dist.destroy_process_group()
