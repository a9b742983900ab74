"""Read one section of params.yaml (or a recipe file) into its typed config dataclass."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pipeline.config import from_mapping, read_yaml
from pipeline.errors import ConfigError

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")


def load_section(name: str, cls: type[T], path: str | Path = DEFAULT_PARAMS) -> T:
    """Return section ``name`` of the YAML file ``path`` as a ``cls``; a missing section is an error."""
    data = read_yaml(path)
    if name not in data:
        raise ConfigError(f"{path}: missing section '{name}'")
    return from_mapping(cls, data[name], str(path), prefix=name)
