"""Every entry point a user runs answers a missing input with one line naming the file (exit
status 2), never a traceback: each stage of a fresh clone whose upstream outputs do not exist
yet, the end-of-run summary, the importer and the params override."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.core.cli import run_stage

ROOT = Path(__file__).resolve().parents[1]

# (module with main, its arguments, a path its one error line must name)
ENTRY_POINTS = [
    ("stages.check", ["--out", "outputs/checked.txt"], "data/demo/query.csv"),
    ("stages.denoise", [], "data/demo/train.csv"),
    ("stages.preprocess", [], "outputs/denoised"),
    ("stages.folds", [], "outputs/denoised/train.csv"),
    ("stages.train", ["--model", "lite0", "--fold", "0"], "outputs/cache"),
    ("stages.mutual", ["--pair", "lite0+lite1"], "outputs/cache"),
    ("stages.extract", ["--model", "lite0"], "outputs/folds.csv"),
    ("stages.rerank", ["--model", "lite0"], "outputs/"),
    ("stages.fuse", [], "outputs/"),
    ("stages.submit", [], "outputs/cache/query.csv"),
    ("stages.evaluate", [], "outputs/"),
    ("stages.duplicates", [], "outputs/cache"),
    ("stages.distill", ["--fold", "0"], "outputs/models/lite1/fold0/checkpoints/best.pt"),
    ("stages.import_data", ["market1501", "no_such_folder", "data/market"], "no_such_folder"),
    ("pipeline.params_override", ["no_such_overrides.yaml"], "no_such_overrides.yaml"),
    ("pipeline.evaluate.summary", [], "outputs/metrics.json"),
]


@pytest.fixture
def fresh_clone(tmp_path: Path, monkeypatch) -> Path:
    """The project's params and recipes with nothing made yet (mutual learning switched on, so
    that its stage has a pair to train)."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["mutual"]["pairs"] = ["lite0+lite1"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("module", "argv", "named"), ENTRY_POINTS, ids=[e[0] for e in ENTRY_POINTS])
def test_a_missing_input_is_one_line_naming_it(fresh_clone: Path, capsys, module: str, argv: list[str], named: str) -> None:
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as stopped:
        run_stage(main, argv)
    assert stopped.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and named in lines[0], lines


def test_the_summary_run_as_the_readme_says_prints_no_traceback(tmp_path: Path) -> None:
    """`python -m pipeline.evaluate.summary` before any `dvc repro`: one line, exit status 2."""
    (tmp_path / "params.yaml").write_text("evaluate: {}\nfuse: {}\ntrain: {models: [a], folds: [0]}\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pipeline.evaluate.summary"], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "error: outputs/metrics.json: file not found (run `dvc repro` first)"
