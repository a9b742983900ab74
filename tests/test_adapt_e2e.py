"""The adaptation stage through `dvc repro` on the tiny demo chain: one model, one fold, adapted
transductively to the tiny test set, then extracted by the chain's own extract stage (its
command run directly: that extract depends on adapt in the DVC graph is tested in test_adapt.py,
and the export stage it would pull in first costs CI time for nothing here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.cache import open_split
from pipeline.infer.store import load_features
from pipeline.infer.tta import extract_features
from pipeline.core.params import StageParams
from pipeline.train import load_trained_model
from test_e2e_dvc import COPIED, ROOT, run, tiny_project

pytestmark = pytest.mark.e2e


def git_commit_all(path: Path) -> None:
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"]):
        subprocess.run(cmd, cwd=path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], cwd=path, check=True)


def test_repro_adapts_the_fold_model_and_extraction_reads_the_adapted_weights(tmp_path, monkeypatch):
    monkeypatch.setattr("test_e2e_dvc.COPIED", [*COPIED, "adapt/dvc.yaml"])
    repo = tiny_project(tmp_path)
    run([sys.executable, "-m", "pipeline.params_override", str(ROOT / "tests/data/tiny_adapt.params.yaml")], repo)
    git_commit_all(repo)
    log = run(["dvc", "repro", "adapt/dvc.yaml"], repo)  # the tiny chain up to train, then adapt
    assert "Running stage 'adapt/dvc.yaml:adapt@tiny-0'" in log
    run([sys.executable, "stages/extract.py", "--model", "tiny"], repo)

    params = StageParams(repo / "params.yaml")
    record = json.loads((repo / params.adapt_log("tiny", 0)).read_text())
    assert record["target"] == "outputs/cache"
    query, gallery = (open_split(repo / "outputs/cache", s) for s in ("query", "gallery"))
    assert record["target_images"] == len(query.images) + len(gallery.images)  # the test set, transductively
    assert list(record["rounds"]) == ["round1", "round2"]
    for entry in record["rounds"].values():
        assert entry["clusters"] >= 2 and 0.0 <= entry["noise_fraction"] < 1.0 and entry["eps"] == 0.6

    # the chain's features are the adapted model's, not the trained one's
    features = load_features(repo / "outputs/features/tiny").query.features
    for checkpoint, same in ((params.adapted_dir("tiny", 0).best, True), (params.checkpoint("tiny", 0), False)):
        model, meta = load_trained_model(repo / checkpoint)
        ours = extract_features(model, query.images, input_size=meta["input_size"], mean=meta["mean"], std=meta["std"],
                                cfg=params.extract)
        assert np.allclose(features, ours, atol=1e-5) == same, checkpoint
    assert "Running stage" not in run(["dvc", "repro", "adapt/dvc.yaml"], repo)  # up to date: its outputs are stable
