"""One description of the machine a benchmark ran on, shared by every benchmark's report."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_machine(**versions: str) -> str:
    """CPU, cores, memory, the load at call time (other jobs may share the machine) and versions."""
    try:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (OSError, ValueError):
        memory = "unknown memory"
    parts = [
        f"{cpu_model()}, {os.cpu_count()} cores, {memory}",
        f"load average {os.getloadavg()[0]:.1f}",
        f"Python {platform.python_version()}",
    ]
    parts += [f"{name} {version}" for name, version in versions.items()]
    return "; ".join(parts)
