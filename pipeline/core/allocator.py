"""Keep freed heap memory for reuse, so that a training step or an extraction batch does not
fault in fresh pages for every activation tensor it allocates.

glibc serves allocations above its mmap threshold (a few MiB, raised on the fly up to 32 MiB)
with a fresh ``mmap`` and returns them on ``free``; it also trims the heap's free top. A CPU
forward pass of a convolutional network allocates and frees tensors of tens to hundreds of MiB
every batch, so each batch pays a page fault per 4 KiB touched: on this project's 2-core
machine an EfficientNet-Lite0 training step spent 0.70 s of its 1.62 s in the kernel, and a
batch of 512 extraction views ran 2.66x slower than the same views without the faults
(benchmarks/results/bench_allocator.md). No library sets this for a process: PyTorch leaves the
CPU allocator to libc, and preloading jemalloc or tcmalloc needs a system package and an
environment variable set before Python starts, which a ``dvc repro`` stage cannot rely on.
"""

from __future__ import annotations

import ctypes

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD_BYTES = 512 << 20  # allocations below this come from the reusable heap
TRIM_THRESHOLD_BYTES = 1 << 30    # free heap top kept before it is given back to the system
TOP_PAD_BYTES = 64 << 20          # heap growth per request, so a growing batch does not grow it page by page


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to reuse freed memory (see the module docstring); True when it took.

    A no-op returning False where the C library has no ``mallopt`` (macOS, Windows) or refuses.
    The process keeps at most about ``TRIM_THRESHOLD_BYTES`` of freed memory for reuse.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    settings = ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
                (_M_TOP_PAD, TOP_PAD_BYTES))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
