"""The stages' view of params.yaml: typed sections read on first use, one spelling of the paths."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.core.errors import ConfigError
from pipeline.demo.generate import DemoConfig
from pipeline.core.params import FoldDir, StageParams, fold_dir, load_section

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


def field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def as_yaml(value: Any) -> Any:
    """A default as params.yaml spells it: tuples as lists, nested sections as mappings."""
    if dataclasses.is_dataclass(value):
        return {k: as_yaml(v) for k, v in dataclasses.asdict(value).items()}
    return [as_yaml(v) for v in value] if isinstance(value, (list, tuple)) else value


def test_params_yaml_states_every_key_at_its_section_default():
    """One source of truth for each default: the typed section's. params.yaml states every key
    (DVC tracks only what params.yaml states, so a default hidden in code would change results
    unseen) at exactly that default; the keys without a default (the dataset, the models, the
    folds) it alone supplies. Every section then reads and validates."""
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = StageParams(ROOT / "params.yaml")
    section_types = {name: vars(StageParams)[name].cls for name in StageParams.sections()} | {"demo": DemoConfig}
    assert set(data) == set(section_types)
    for name, section_type in section_types.items():
        stated = data[name] or {}
        for field in dataclasses.fields(section_type):
            assert field.name in stated, f"params.yaml: {name}.{field.name} is not stated"
            default = field_default(field)
            if default is not dataclasses.MISSING:
                assert stated[field.name] == as_yaml(default), f"params.yaml: {name}.{field.name} differs from its default"
        section = getattr(params, name) if name != "demo" else load_section(name, DemoConfig, ROOT / "params.yaml")
        assert isinstance(section, section_type)


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
