"""pipeline.core.allocator: freed memory is reused instead of faulted in again (glibc only)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from pipeline.core.allocator import MMAP_THRESHOLD_BYTES

# A batch loop in miniature: each round allocates and fills two tensors (100 and 50 MiB), then
# frees them; the probe prints the minor page faults of the last three of sixteen rounds. Kept
# memory needs up to about eight rounds to settle (freed chunks coalesce until one fits the next request),
# as a training loop's first steps do. Each mode runs in a fresh process: the setting is
# process-wide and cannot be undone.
PROBE = """
import resource, sys
import torch
if sys.argv[1] == "keep":
    from pipeline.core.allocator import keep_freed_memory
    assert keep_freed_memory()
def faults_of_one_round(n_bytes):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    first, second = torch.ones(n_bytes // 4), torch.ones(n_bytes // 8)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del first, second
    return faults
print(sum([faults_of_one_round(int(sys.argv[2])) for _ in range(16)][-3:]))
"""

N_BYTES = 100 << 20  # above glibc's largest automatic mmap threshold (32 MiB), below ours
PAGES = 3 * (N_BYTES + N_BYTES // 2) // 4096  # touched in the last three rounds

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc's")


def _steady_state_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode, str(N_BYTES)], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def test_default_glibc_faults_every_page_again() -> None:
    # the reference: without the setting, every freed tensor is unmapped and faulted in anew
    assert N_BYTES < MMAP_THRESHOLD_BYTES
    assert _steady_state_faults("default") > PAGES // 2


def test_kept_memory_is_reused_without_faults() -> None:
    assert _steady_state_faults("keep") < PAGES // 20
