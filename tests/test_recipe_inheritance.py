"""Recipes that inherit (``_base_``, pipeline/train/recipe.py): merge rules, errors that name the
file, and the shipped recipes' chains inside the folder the DVC stages track."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.core.config import merged
from pipeline.core.errors import ConfigError
from pipeline.train.recipe import BASE_KEY, load_recipe, read_recipe

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_merged_merges_mappings_at_any_depth_and_replaces_everything_else():
    base = {"a": {"x": 1, "y": {"deep": 1, "keep": 2}}, "b": [1, 2], "c": 3}
    child = {"a": {"y": {"deep": 9}, "z": 4}, "b": [7], "d": 5}
    assert merged(base, child) == {"a": {"x": 1, "y": {"deep": 9, "keep": 2}, "z": 4}, "b": [7], "c": 3, "d": 5}
    assert base == {"a": {"x": 1, "y": {"deep": 1, "keep": 2}}, "b": [1, 2], "c": 3}  # inputs untouched


def test_a_chain_of_bases_resolves_child_over_base(tmp_path):
    write(tmp_path / "_base_/root.yaml", {"model": {"pooling": "gem", "head": "linear"}, "train": {"epochs": 9, "p": 4}})
    write(tmp_path / "_base_/mid.yaml", {BASE_KEY: "root.yaml", "train": {"epochs": 5}})
    leaf = write(tmp_path / "recipes/leaf.yaml", {BASE_KEY: "../_base_/mid.yaml", "model": {"backbone": "test_efficientnet"}})
    assert read_recipe(leaf) == {"model": {"pooling": "gem", "head": "linear", "backbone": "test_efficientnet"},
                                 "train": {"epochs": 5, "p": 4}}
    recipe = load_recipe(leaf)
    assert (recipe.model.backbone, recipe.model.pooling, recipe.train.epochs, recipe.train.p) == ("test_efficientnet", "gem", 5, 4)


def test_bad_bases_name_the_file(tmp_path):
    write(tmp_path / "_base_/a.yaml", {BASE_KEY: "b.yaml"})
    write(tmp_path / "_base_/b.yaml", {BASE_KEY: "a.yaml"})
    cyclic = write(tmp_path / "r/cyclic.yaml", {BASE_KEY: "../_base_/a.yaml"})
    with pytest.raises(ConfigError, match=r"a\.yaml: _base_: b\.yaml .*|b\.yaml: _base_: a\.yaml is already in this recipe's chain"):
        read_recipe(cyclic)
    write(tmp_path / "elsewhere/base.yaml", {"train": {"epochs": 1}})
    outside = write(tmp_path / "r/outside.yaml", {BASE_KEY: "../elsewhere/base.yaml"})
    with pytest.raises(ConfigError, match=rf"{outside}: _base_: ../elsewhere/base.yaml is not in a '_base_' folder"):
        read_recipe(outside)
    missing = write(tmp_path / "r/missing.yaml", {BASE_KEY: "../_base_/none.yaml"})
    with pytest.raises(ConfigError, match=r"_base_/none\.yaml: file not found"):
        read_recipe(missing)
    empty = write(tmp_path / "r/empty.yaml", {BASE_KEY: ""})
    with pytest.raises(ConfigError, match=rf"{empty}: _base_ must be the path of a base recipe"):
        read_recipe(empty)
    typo = write(tmp_path / "r/typo.yaml", {BASE_KEY: "../_base_/root.yaml", "model": {"backbone": "test_efficientnet"}})
    write(tmp_path / "_base_/root.yaml", {"train": {"epochs": 1, "epohcs": 2}})
    with pytest.raises(ConfigError, match=rf"{typo}: .*epohcs"):  # a base's typo is caught, named by the recipe loaded
        load_recipe(typo)


def shipped_recipes() -> list[Path]:
    return [p for p in sorted((ROOT / "configs").rglob("*.yaml"))
            if not p.name.endswith("params.yaml") and p.parent.name != "_base_"]


def test_shipped_recipes_inherit_only_from_the_tracked_base_folder():
    tracked = ROOT / "configs" / "_base_"
    dvc = (ROOT / "dvc.yaml").read_text()
    assert dvc.count("- configs/_base_") >= 3  # check, train and mutual stages
    assert "- configs/_base_" in (ROOT / "distill/dvc.yaml").read_text()
    inheriting = 0
    for path in shipped_recipes():
        while (base := yaml.safe_load(path.read_text()).get(BASE_KEY)) is not None:
            path = (path.parent / base).resolve()
            assert path.parent == tracked, f"{path}: a base outside configs/_base_ is not a DVC dependency"
            inheriting += 1
    assert inheriting >= 15
