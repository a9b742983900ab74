"""The real train stage under torchrun with NCCL on one GPU (world size 1), on the tiny demo."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from pipeline.train.checkpoint import load_checkpoint
from test_e2e_dvc import run, tiny_project

pytestmark = pytest.mark.gpu


def test_torchrun_nccl_world_size_one_trains_through_the_train_stage(tmp_path, monkeypatch):
    repo = tiny_project(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]))
    for stage in ("demo", "denoise", "preprocess", "folds"):  # the inputs dvc repro would make first
        run([sys.executable, f"stages/{stage}.py"], repo)
    log = run([
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
        "stages/train.py", "--model", "tiny", "--fold", "0",
    ], repo)
    assert "joined the nccl process group: rank 0 of 1 on cuda:0" in log
    assert "tiny fold 0 done" in log
    state = load_checkpoint(repo / "outputs/models/tiny/fold0/checkpoints/last.pt")
    assert state["epoch"] == 2 and len(state["history"]) == 3  # step 0 (untrained) + 2 epochs
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert (repo / "outputs/models/tiny/fold0/checkpoints/best.pt").is_file()
