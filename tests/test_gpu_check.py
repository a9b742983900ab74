"""The prepared GPU check on a CPU: its GPU tests skip with the reason, its benchmark script runs
end to end at tiny sizes (--dry-run), and its wheel plan against the device's package list."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tools")]
import gpu_check_bench  # noqa: E402
import gpu_wheels  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the GPU tests run instead of skipping")
def test_gpu_tests_are_collected_and_skipped_with_the_reason():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/gpu"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    skipped = int(re.search(r"(\d+) skipped", summary).group(1))
    assert skipped >= 15 and "passed" not in summary and "failed" not in summary, summary
    assert "needs a CUDA GPU: torch.cuda.is_available() is False" in done.stdout


def item_rows(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first table under ``heading``, as cells."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in lines[start + 2 : end]]


@pytest.mark.e2e
def test_benchmark_dry_run_end_to_end(tmp_path):
    gpu_check_bench.main(["--dry-run", "--in-process", "--budget", "1e9", "--out", str(tmp_path)])
    text = (tmp_path / "gpu_check_bench.md").read_text()
    assert "DRY RUN on the CPU" in text
    exact = item_rows(text, "## Exact k-reciprocal")
    assert [r[1] for r in exact] == ["numpy (cpu)", "torch (cpu)"] and all(r[2] == "ok" for r in exact)
    assert float(exact[1][7]) <= 1e-4  # torch against numpy on the same inputs
    ladder = item_rows(text, "Largest N")
    assert [r[0] for r in ladder] == ["300", "600"] and all(r[1] == "ok" for r in ladder)
    sparse = item_rows(text, "## Sparse")
    assert all(r[1] == "ok" for r in sparse) and sparse[1][3] == "1.0000"  # same top 10 as the CPU run
    for heading in ("## Training", "## Extraction"):
        rows = item_rows(text, heading)
        assert len(rows) >= 1 and all(r[1] == "ok" and r[2].startswith(("random", "pretrained")) for r in rows)
        assert all(float(r[5].strip("*")) > 0 for r in rows)  # a ratio was measured


def test_benchmark_item_process_reports_results_failures_and_time_limits(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": ""}
    ok = gpu_check_bench.Item("host_copy", "copy", dict(nq=3, ng=4, device="cpu"), 60)
    result = gpu_check_bench.run_item(ok, tmp_path, env, 60)
    assert result["status"] == "ok" and len(result["seconds"]) == 5
    broken = gpu_check_bench.Item("rerank_exact", "no sizes", {}, 60)
    assert gpu_check_bench.run_item(broken, tmp_path, env, 60)["status"] == "failed (exit 1): KeyError: 'nq'"
    assert gpu_check_bench.run_item(ok, tmp_path, env, 0.01)["status"] == "timed out after 0 s"


def test_wheel_plan_rules():
    device = {"torch": "2.11.0", "numpy": "2.5.2", "huggingface-hub": "1.33.0", "pandas": None, "scipy": None}
    needed = {"torch": "2.13.0+cpu", "numpy": "2.4.6", "huggingface_hub": "2.4.0", "pandas": "3.1.1",
              "scipy": "1.17.1", "albumentations": "2.0.8", "retrieval-pipeline": "0.1.0"}
    rows = {r.name: r for r in gpu_wheels.plan(needed, device)}
    assert "retrieval-pipeline" not in rows  # the project travels as the working tree
    assert {name for name, r in rows.items() if r.carry} == {"huggingface_hub", "pandas", "albumentations"}
    assert rows["albumentations"].why == "missing on the device"
    assert rows["huggingface_hub"].why == "another major version on the device"  # 2.x here, 1.x there
    assert rows["pandas"].why == gpu_wheels.ALWAYS_CARRY["pandas"]
    assert rows["torch"].device == "2.11.0" and rows["scipy"].device == "yes"


def test_device_list_and_the_projects_pins():
    device = gpu_wheels.read_device_list()
    assert device["python"] == "3.12.3" and device["torch"] == "2.11.0" and device["cupy-cuda13x"] == "14.2.0"
    assert "cupy-cuda12x" not in device and "faiss-gpu-cu12" not in device  # hence GPU_EXTRAS
    pins = gpu_wheels.pinned()
    carried = {r.name for r in gpu_wheels.plan(pins, device) if r.carry}
    assert {"albumentations", "dvc", "dvclive", "faiss-cpu", "pytorch-metric-learning", "pandas", "timm"} <= carried
    assert not carried & {"torch", "numpy", "scipy", "opencv-python-headless", "pillow", "PyYAML"}


def test_device_list_errors_name_the_line(tmp_path):
    path = tmp_path / "device.txt"
    path.write_text("# comment\ntorch 2.11.0\nnumpy 2.5.2 extra\n")
    with pytest.raises(ValueError, match=r"device.txt:3: expected 'name \[version\]'"):
        gpu_wheels.read_device_list(path)
