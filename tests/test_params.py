"""The stages' view of params.yaml: typed sections read on first use, one spelling of the paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.params import FoldDir, StageParams, fold_dir

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_paths_follow_the_sections(tmp_path):
    params = StageParams(write(tmp_path, """
denoise: {out: d}
preprocess: {out: c}
folds: {out: f.csv}
train: {models: [a, b], folds: [0, 1], out: m, recipes: r}
extract: {out: x}
rerank: {out: rr}
"""))
    assert params.denoised() == Path("d") and params.cache() == Path("c") and params.folds_file() == Path("f.csv")
    assert params.checkpoint("a", 1) == Path("m/a/fold1/checkpoints/best.pt")
    assert params.fold_dir("a", 1) == FoldDir(Path("m/a/fold1"))
    assert params.fold_dir("a", 1).last == Path("m/a/fold1/checkpoints/last.pt")
    assert params.fold_dir("a", 1).live == Path("m/a/fold1/live")
    assert params.recipe("b") == Path("r/b.yaml")
    assert params.features("b") == Path("x/b")
    assert params.candidates("b") == Path("rr/b.npz")
    assert fold_dir("m", "b", 0).best == Path("m/b/fold0/checkpoints/best.pt")


def test_a_section_is_read_when_used_and_errors_name_file_and_key(tmp_path):
    path = write(tmp_path, "rerank: {k1: 0}\nfuse: {tune: false, source: raw}\n")
    params = StageParams(path)
    assert params.fuse.source == "raw"  # the broken rerank section is not read
    assert params.fuse is params.fuse  # read once
    with pytest.raises(ConfigError, match=f"{path}: rerank: k1 must be a positive integer"):
        params.rerank
    with pytest.raises(ConfigError, match="missing section 'extract'"):
        params.extract
    with pytest.raises(ConfigError, match="unknown key 'submit.lenght'"):
        StageParams(write(tmp_path, "submit: {lenght: 3}\n")).submit


def test_the_shipped_params_read_in_full():
    params = StageParams(ROOT / "params.yaml")
    for name in ("dataset", "denoise", "preprocess", "folds", "train", "extract", "rerank", "fuse", "submit", "evaluate"):
        assert getattr(params, name) is not None


@pytest.mark.parametrize("stage", ["rerank", "fuse", "submit", "evaluate"])
def test_the_numpy_stages_start_without_torch(stage):
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['stages/{stage}.py', '--help']\n"
        "try:\n"
        f"    runpy.run_path('stages/{stage}.py', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'timm', 'albumentations') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
