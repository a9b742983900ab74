"""Mixed precision: bf16 autocast on CPU; fp16 with a gradient scaler, or bf16, on CUDA."""

from __future__ import annotations

import contextlib
import logging
from typing import Literal

import torch

AmpMode = Literal["none", "bf16", "fp16"]

log = logging.getLogger(__name__)


def resolve_amp(mode: AmpMode, device: torch.device) -> AmpMode:
    """fp16 autocast is a CUDA feature; on CPU the recipe's fp16 falls back to bf16."""
    if mode == "fp16" and device.type != "cuda":
        log.warning("amp: fp16 needs CUDA; using bf16 on %s", device.type)
        return "bf16"
    return mode


def autocast(mode: AmpMode, device: torch.device) -> contextlib.AbstractContextManager:
    if mode == "none":
        return contextlib.nullcontext()
    dtype = torch.float16 if mode == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(mode: AmpMode, device: torch.device) -> torch.amp.GradScaler:
    """A scaler that is a no-op except for fp16 (bf16 has fp32's exponent range)."""
    return torch.amp.GradScaler(device.type, enabled=(mode == "fp16"))
