"""torchrun support: one process per GPU, DistributedDataParallel, per-rank PK batches.

``torchrun --nproc_per_node N stages/train.py ...`` sets RANK / WORLD_SIZE / LOCAL_RANK;
without them training is a plain single process and nothing here does anything. Under a
launcher the process group is joined even for N = 1, so one GPU runs exactly the code path
of N (DDP, NCCL collectives); DDP over one process computes the same gradients.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from pipeline.core.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    joined: bool = False  # in a process group (started by a launcher), whatever the world size

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.joined or self.world_size > 1


def resolve_device(name: str, key: str = "train.device") -> torch.device:
    """'auto' picks CUDA when present, so the same params run on a laptop and a GPU box."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}: cuda was asked for but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def init_distributed(device_name: str = "auto") -> DistInfo:
    """Join the torchrun process group if there is one; pick this rank's device."""
    device = resolve_device(device_name)
    if "WORLD_SIZE" not in os.environ:  # every launcher sets it; a plain run does not
        return DistInfo(device=device)
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    log.info("joined the %s process group: rank %d of %d on %s", dist.get_backend(), dist.get_rank(), world_size, device)
    return DistInfo(rank=dist.get_rank(), world_size=world_size, device=device, joined=True)


def wrap_model(model: nn.Module, info: DistInfo) -> nn.Module:
    """DDP over the parameters that train now (rewrap after unfreezing: DDP fixes its set)."""
    if not info.enabled:
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_finite(value: torch.Tensor, info: DistInfo) -> bool:
    """True when the loss is finite on every rank: all ranks must skip a step together."""
    flag = torch.isfinite(value.detach()).all().to(torch.float32).reshape(1)
    if info.enabled:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def average_gradients(parameters: list[nn.Parameter], info: DistInfo) -> None:
    """Average gradients of parameters outside DDP (the centre loss centres) over ranks."""
    if not info.enabled:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
