"""A tiny array-namespace shim: the k-reciprocal core is written once against ``Ops``.

Why a local shim and not array-api-compat: the two hot primitives of re-ranking, partial top-k
selection and scatter-add, are outside the array API standard, so per-backend code is needed
either way; what remains is a dozen one-line wrappers. numpy and cupy share one class (cupy
mirrors numpy's API); torch (CPU or CUDA) has its own. GPU backends are optional: nothing here
imports cupy or torch until asked, and "auto" falls back to the CPU.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.core.errors import ConfigError

Array = Any  # a numpy, cupy or torch array, depending on the backend


class _SharedOps:
    """The calls that numpy, cupy and torch spell alike; ``xp`` is the module."""

    xp: Any

    def minimum(self, a: Array, b: Array) -> Array:
        return self.xp.minimum(a, b)

    def exp(self, x: Array) -> Array:
        return self.xp.exp(x)

    def where(self, cond: Array, a: Any, b: Any) -> Array:
        return self.xp.where(cond, a, b)


class NumpyOps(_SharedOps):
    """numpy (CPU) or cupy (GPU): same API, different module."""

    def __init__(self, module: Any = np) -> None:
        self.xp = module
        self.name = module.__name__

    def dtype(self, name: str) -> Any:
        return getattr(self.xp, name)

    def asarray(self, a: Any, dtype: str | None = None) -> Array:
        return self.xp.asarray(a, dtype=None if dtype is None else self.dtype(dtype))

    def to_numpy(self, a: Array) -> np.ndarray:
        return a.get() if self.name == "cupy" else np.asarray(a)

    def astype(self, a: Array, dtype: str) -> Array:
        return a.astype(self.dtype(dtype), copy=False)

    def arange(self, start: int, stop: int | None = None) -> Array:
        return self.xp.arange(start, stop, dtype=self.xp.int64) if stop is not None else self.xp.arange(start, dtype=self.xp.int64)

    def zeros(self, shape: int | tuple[int, ...], dtype: str) -> Array:
        return self.xp.zeros(shape, dtype=self.dtype(dtype))

    def empty(self, shape: int | tuple[int, ...], dtype: str) -> Array:
        return self.xp.empty(shape, dtype=self.dtype(dtype))

    def topk_smallest(self, x: Array, k: int) -> tuple[Array, Array]:
        """(values, column indices) of the k smallest entries of each row, ascending."""
        if self.name == "numpy" and _torch_cpu() is not None:
            # numpy's argpartition is single-threaded; torch.topk uses both cores on the same
            # memory (no copy), and torch is a project dependency.
            torch = _torch_cpu()
            values, idx = torch.topk(torch.from_numpy(x), k, dim=1, largest=False, sorted=True)
            return values.numpy(), idx.numpy()
        if k < x.shape[1]:
            part = self.xp.argpartition(x, k - 1, axis=1)[:, :k]
        else:
            part = self.xp.broadcast_to(self.xp.arange(x.shape[1]), x.shape)
        values = self.xp.take_along_axis(x, part, axis=1)
        order = self.xp.argsort(values, axis=1, kind="stable")
        return self.xp.take_along_axis(values, order, axis=1), self.xp.take_along_axis(part, order, axis=1)

    def matmul_into(self, a: Array, b_t: Array, out: Array) -> Array:
        """a @ b_t.T written into a reused buffer (no fresh (rows x N) allocation per block)."""
        return self.xp.matmul(a, b_t.T, out=out)

    def row_max(self, x: Array) -> Array:
        return x.max(axis=1)

    def argsort_rows(self, x: Array) -> Array:
        return self.xp.argsort(x, axis=1, kind="stable")

    def rowdot(self, a: Array, b: Array) -> Array:
        return self.xp.einsum("ij,ij->i", a, b)  # no (rows, dim) temporary, unlike (a * b).sum(1)

    def take_rows(self, x: Array, idx: Array) -> Array:
        return self.xp.take_along_axis(x, idx, axis=1)

    def count(self, mask: Array, axis: int) -> Array:
        return mask.sum(axis=axis, dtype=self.xp.int64)

    def clip_min_(self, x: Array, value: float) -> Array:
        return self.xp.maximum(x, value, out=x)

    def sort(self, x: Array) -> Array:
        return self.xp.sort(x)

    def argsort(self, x: Array) -> Array:
        return self.xp.argsort(x, kind="stable")

    def searchsorted(self, sorted_keys: Array, values: Array) -> Array:
        return self.xp.searchsorted(sorted_keys, values)

    # Sort-based unique: numpy 2.4's default hash-based np.unique was ~20x slower on these
    # structured int64 keys (row * N + col) in our measurements.
    def unique(self, x: Array) -> Array:
        s = self.xp.sort(x)
        keep = self.xp.ones(s.shape[0], dtype=bool)
        keep[1:] = s[1:] != s[:-1]
        return s[keep]

    def unique_inverse(self, x: Array) -> tuple[Array, Array]:
        order = self.xp.argsort(x)
        s = x[order]
        new = self.xp.ones(s.shape[0], dtype=bool)
        new[1:] = s[1:] != s[:-1]
        inverse = self.xp.empty(s.shape[0], dtype=self.xp.int64)
        inverse[order] = self.xp.cumsum(new) - 1
        return s[new], inverse

    def bincount(self, x: Array, weights: Array | None, length: int) -> Array:
        """Sum of ``weights`` (or counts) per bin; ``x`` must lie in [0, length)."""
        return self.xp.bincount(x, weights=weights, minlength=length)

    def repeat(self, x: Array, counts: Array) -> Array:
        return self.xp.repeat(x, counts)

    def cumsum(self, x: Array) -> Array:
        return self.xp.cumsum(x)

    def concat(self, arrays: Sequence[Array]) -> Array:
        return self.xp.concatenate(list(arrays))


class TorchOps(_SharedOps):
    """torch on CPU or CUDA."""

    def __init__(self, device: str) -> None:
        import torch

        self.xp = torch
        self.device = torch.device(device)
        self.name = f"torch:{self.device.type}"

    def dtype(self, name: str) -> Any:
        return getattr(self.xp, name)

    def asarray(self, a: Any, dtype: str | None = None) -> Array:
        return self.xp.as_tensor(a, dtype=None if dtype is None else self.dtype(dtype), device=self.device)

    def to_numpy(self, a: Array) -> np.ndarray:
        return a.detach().cpu().numpy()

    def astype(self, a: Array, dtype: str) -> Array:
        return a.to(self.dtype(dtype))

    def arange(self, start: int, stop: int | None = None) -> Array:
        if stop is None:
            start, stop = 0, start
        return self.xp.arange(start, stop, dtype=self.xp.int64, device=self.device)

    def zeros(self, shape: int | tuple[int, ...], dtype: str) -> Array:
        return self.xp.zeros(shape, dtype=self.dtype(dtype), device=self.device)

    def empty(self, shape: int | tuple[int, ...], dtype: str) -> Array:
        return self.xp.empty(shape, dtype=self.dtype(dtype), device=self.device)

    def topk_smallest(self, x: Array, k: int) -> tuple[Array, Array]:
        values, idx = self.xp.topk(x, k, dim=1, largest=False, sorted=True)
        return values, idx

    def matmul_into(self, a: Array, b_t: Array, out: Array) -> Array:
        return self.xp.matmul(a, b_t.T, out=out)

    def row_max(self, x: Array) -> Array:
        return x.amax(dim=1)

    def argsort_rows(self, x: Array) -> Array:
        return self.xp.argsort(x, dim=1, stable=True)

    def rowdot(self, a: Array, b: Array) -> Array:
        return self.xp.einsum("ij,ij->i", a, b)

    def take_rows(self, x: Array, idx: Array) -> Array:
        return self.xp.gather(x, 1, idx)

    def count(self, mask: Array, axis: int) -> Array:
        return mask.sum(dim=axis, dtype=self.xp.int64)

    def clip_min_(self, x: Array, value: float) -> Array:
        return x.clamp_(min=value)

    def sort(self, x: Array) -> Array:
        return self.xp.sort(x, stable=True).values

    def argsort(self, x: Array) -> Array:
        return self.xp.argsort(x, stable=True)

    def searchsorted(self, sorted_keys: Array, values: Array) -> Array:
        return self.xp.searchsorted(sorted_keys, values)

    def unique(self, x: Array) -> Array:
        return self.xp.unique(x, sorted=True)

    def unique_inverse(self, x: Array) -> tuple[Array, Array]:
        return self.xp.unique(x, sorted=True, return_inverse=True)

    def bincount(self, x: Array, weights: Array | None, length: int) -> Array:
        if weights is None:
            return self.xp.bincount(x, minlength=length)
        # index_add_ keeps the weights' dtype (torch.bincount would promote to float64).
        return self.xp.zeros(length, dtype=weights.dtype, device=self.device).index_add_(0, x, weights)

    def repeat(self, x: Array, counts: Array) -> Array:
        return self.xp.repeat_interleave(x, counts)

    def cumsum(self, x: Array) -> Array:
        return self.xp.cumsum(x, dim=0)

    def concat(self, arrays: Sequence[Array]) -> Array:
        return self.xp.cat(list(arrays))


Ops = NumpyOps | TorchOps


@functools.cache
def _torch_cpu() -> Any | None:
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def _cuda_available() -> bool:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@functools.cache
def _cupy() -> Any | None:
    """cupy, if it can compile and run a kernel here. Seeing a device is not enough: a cupy
    built for another CUDA (cupy-cuda12x on a CUDA 13 machine, say) imports and counts the
    GPUs, then fails at its first kernel, which would crash instead of falling back."""
    try:
        cupy = importlib.import_module("cupy")
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return None
        if int((cupy.arange(4, dtype=cupy.int64) * 2).sum()) != 12:  # elementwise + reduction kernels
            return None
        return cupy
    except Exception:  # noqa: BLE001 - a broken CUDA install means "no cupy", not a crash
        return None


def get_ops(xp: str | Any | None = "auto", device: str = "auto") -> Ops:
    """Pick the array backend.

    ``xp``: "auto" (None), "numpy", "cupy", "torch" or one of those modules. ``device``: "auto",
    "cpu" or "cuda". "auto" uses the GPU (cupy, else torch) when one is present, else numpy.
    """
    name = getattr(xp, "__name__", xp) or "auto"
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if name == "numpy":
        return NumpyOps(np)
    if name == "torch":
        want_cuda = device == "cuda" or (device == "auto" and _cuda_available())
        if want_cuda and not _cuda_available():
            raise ConfigError("device 'cuda' asked for, but torch sees no GPU")
        return TorchOps("cuda" if want_cuda else "cpu")
    if name == "cupy":
        cupy = _cupy()
        if cupy is None:
            raise ConfigError("backend 'cupy' asked for, but cupy or a GPU is missing")
        return NumpyOps(cupy)
    if name != "auto":
        raise ConfigError(f"array backend must be 'auto', 'numpy', 'cupy' or 'torch', got {xp!r}")
    if device == "cpu":
        return NumpyOps(np)
    cupy = _cupy()
    if cupy is not None:
        return NumpyOps(cupy)
    if _cuda_available():
        return TorchOps("cuda")
    if device == "cuda":
        raise ConfigError("device 'cuda' asked for, but neither cupy nor torch sees a GPU")
    return NumpyOps(np)
