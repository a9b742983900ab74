"""dvc.yaml's hand-written code deps must cover every module a stage imports within pipeline/.

A module a stage imports but does not list as a dep (itself or a folder above it) would let
a change to that module rerun nothing. The import closure is computed statically with ast,
over the stage script and every pipeline module it reaches, package __init__ files included
(importing ``pipeline.train.recipe`` runs ``pipeline/train/__init__.py`` and what it imports).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pipeline"
_SCRIPT = re.compile(r"\bstages/\w+\.py\b")


def module_files(dotted: str, root: Path = ROOT) -> list[Path]:
    """Files executed by importing ``dotted`` (every package __init__ on the way), relative to ``root``."""
    parts = dotted.split(".")
    files = []
    for depth in range(1, len(parts) + 1):
        base = Path(*parts[:depth])
        if (root / base / "__init__.py").is_file():
            files.append(base / "__init__.py")
        elif (root / base.with_suffix(".py")).is_file():
            files.append(base.with_suffix(".py"))
    return files


def imported_modules(path: Path) -> set[str]:
    """Dotted names within the package that ``path`` imports (a ``from a import b`` may name module a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name == PACKAGE or name.startswith(PACKAGE + ".")}


def import_closure(script: Path, root: Path = ROOT) -> set[Path]:
    """Every pipeline file (relative to ``root``) that running ``script`` may import."""
    seen: set[Path] = set()
    todo = [root / script]
    while todo:
        for name in imported_modules(todo.pop()):
            for file in module_files(name, root):
                if file not in seen:
                    seen.add(file)
                    todo.append(root / file)
    return seen


def stage_code_deps(*dvc_yamls: Path) -> dict[str, tuple[Path, list[Path]]]:
    """stage name -> (its script, its deps that are plain paths), foreach/matrix stages once each.

    Paths are relative to the project root: a stage's ``wdir`` must lead back to it.
    """
    result = {}
    for dvc_yaml in dvc_yamls:
        for name, stage in yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"].items():
            body = stage.get("do", stage)
            where = f"{dvc_yaml.relative_to(ROOT)} stage {name}"
            assert (dvc_yaml.parent / body.get("wdir", ".")).resolve() == ROOT, f"{where}: wdir is not the project root"
            script = _SCRIPT.search(body["cmd"])
            assert script, f"{where}: no stages/<name>.py in its cmd"
            deps = [Path(d) for d in body.get("deps", []) if isinstance(d, str) and "${" not in d]
            result[where] = (Path(script.group(0)), deps)
    return result


DVC_YAMLS = (ROOT / "dvc.yaml", ROOT / "demo/dvc.yaml", ROOT / "distill/dvc.yaml", ROOT / "adapt/dvc.yaml")


def uncovered(files: set[Path], deps: list[Path]) -> list[str]:
    return sorted(str(f) for f in files if not any(f == d or d in f.parents for d in deps))


def test_closure_follows_from_imports_and_package_inits(tmp_path):
    (tmp_path / "pipeline/sub").mkdir(parents=True)
    (tmp_path / "stages").mkdir()
    (tmp_path / "pipeline/__init__.py").write_text("")
    (tmp_path / "pipeline/sub/__init__.py").write_text("from pipeline.sub.b import B\n")
    (tmp_path / "pipeline/sub/a.py").write_text("import os\n\ndef f():\n    from pipeline import c\n")
    (tmp_path / "pipeline/sub/b.py").write_text("B = 1\n")
    (tmp_path / "pipeline/c.py").write_text("")
    (tmp_path / "pipeline/unused.py").write_text("")
    (tmp_path / "stages/s.py").write_text("from pipeline.sub.a import f\n")
    closure = import_closure(Path("stages/s.py"), tmp_path)
    assert closure == {Path(p) for p in (
        "pipeline/__init__.py", "pipeline/sub/__init__.py", "pipeline/sub/a.py", "pipeline/sub/b.py", "pipeline/c.py")}
    assert uncovered(closure, [Path("pipeline/sub"), Path("pipeline/__init__.py")]) == ["pipeline/c.py"]


@pytest.mark.parametrize("stage", sorted(stage_code_deps(*DVC_YAMLS)))
def test_stage_deps_cover_its_imports(stage):
    script, deps = stage_code_deps(*DVC_YAMLS)[stage]
    assert script in deps, f"{stage}: {script} is not among its deps"
    missing = uncovered(import_closure(script), deps)
    assert not missing, f"{stage}: imports modules its deps do not cover: {missing}"
