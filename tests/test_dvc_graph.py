"""The chain's DVC graph: the demo dataset is built by `dvc repro` only when the chain reads it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

ROOT = Path(__file__).resolve().parents[1]
# dvc's own graph code warns about a deprecation in a library it uses (pygtrie); not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:_NoneStep.value:DeprecationWarning")

FILES = ["dvc.yaml", "demo/dvc.yaml", "distill/dvc.yaml", "params.yaml", ".dvc/config", ".dvcignore"]


def stages_of_a_bare_repro(repo: Path) -> set[str]:
    """The stages a bare `dvc repro` considers: those of its default target, the root
    dvc.yaml, with everything upstream of them (as dvc's repro collects them)."""
    with Repo(repo) as dvc_repo:
        return {stage.addressing for stage in dvc_repo.stage.collect("dvc.yaml", with_deps=True)}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # dvc resolves stage paths against the working directory
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def test_demo_is_upstream_only_while_dataset_root_is_the_demo(repo: Path) -> None:
    assert "demo/dvc.yaml:demo" in stages_of_a_bare_repro(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["dataset"]["root"] = "data/mine"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = stages_of_a_bare_repro(repo)
    assert "denoise" in stages and not any("demo" in stage for stage in stages)


def test_distillation_is_opt_in_and_reads_every_teacher_checkpoint(repo: Path) -> None:
    stages = stages_of_a_bare_repro(repo)
    assert "extract@lite0" in stages and not any("distill" in stage for stage in stages)
    with Repo(repo) as dvc_repo:  # distill.folds [] (the default): distill/dvc.yaml has no stage at all
        assert not dvc_repo.stage.collect("distill/dvc.yaml")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["distill"]["folds"] = [0]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with Repo(repo) as dvc_repo:
        upstream = {s.addressing for s in dvc_repo.stage.collect("distill/dvc.yaml:distill@0", with_deps=True)}
    assert {"train@lite1-0", "folds", "preprocess"} <= upstream
