from dataclasses import dataclass, field
from typing import Literal

import pytest

from pipeline.core.config import from_mapping, read_yaml
from pipeline.core.errors import ConfigError
from pipeline.core.params import load_section


@dataclass(frozen=True)
class Inner:
    a: int = 1
    ratio: float = 0.5


@dataclass(frozen=True)
class Outer:
    name: str
    mode: Literal["x", "y"] = "x"
    inner: Inner = field(default_factory=Inner)
    sizes: tuple[float, ...] = (1.0,)
    pair: tuple[int, int] = (0, 1)
    weights: dict[str, float] = field(default_factory=dict)
    maybe: int | None = None

    def validate(self) -> None:
        if not self.name:
            raise ValueError("name must not be empty")


def test_builds_nested_typed_objects():
    cfg = from_mapping(
        Outer,
        {"name": "n", "inner": {"a": 3, "ratio": 2}, "sizes": [1, 2], "pair": [4, 5], "weights": {"m": 1}},
        "p.yaml",
    )
    assert cfg == Outer(name="n", inner=Inner(a=3, ratio=2.0), sizes=(1.0, 2.0), pair=(4, 5), weights={"m": 1.0})
    assert isinstance(cfg.inner.ratio, float)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "n", "inner": {"b": 3}}, "p.yaml: unknown key 'inner.b'"),
        ({"nam": "x"}, "unknown key 'nam'"),
        ({}, "missing required key 'name'"),
        ({"name": "n", "mode": "z"}, "'mode' must be one of"),
        ({"name": 1}, "'name' must be a string"),
        ({"name": "n", "inner": {"a": True}}, "'inner.a' must be an integer"),
        ({"name": "n", "inner": {"a": 1.5}}, "'inner.a' must be an integer"),
        ({"name": "n", "pair": [1]}, "'pair' must have 2 items"),
        ({"name": "n", "sizes": "1"}, "'sizes' must be a list"),
        ({"name": "n", "weights": {"m": "heavy"}}, "'weights.m' must be a number"),
        ({"name": ""}, "name must not be empty"),
    ],
)
def test_rejects_bad_values_naming_file_and_key(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_mapping(Outer, data, "p.yaml")


def test_optional_accepts_none_and_value():
    assert from_mapping(Outer, {"name": "n", "maybe": None}, "p").maybe is None
    assert from_mapping(Outer, {"name": "n", "maybe": 4}, "p").maybe == 4


def test_read_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml: file not found"):
        read_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        read_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        read_yaml(listy)


def test_read_yaml_never_constructs_python_objects(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("a: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError):
        read_yaml(evil)


def test_load_section_prefixes_keys_with_the_section(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("outer:\n  name: n\n  inner:\n    typo: 1\n")
    with pytest.raises(ConfigError, match=r"params.yaml: unknown key 'outer.inner.typo'"):
        load_section("outer", Outer, params)
    with pytest.raises(ConfigError, match="missing section 'other'"):
        load_section("other", Outer, params)
