"""Plain YAML into typed, validated dataclasses.

Each module declares the knobs it takes as a frozen dataclass; ``from_mapping`` builds one
from a YAML mapping and rejects unknown or misspelled keys, missing required keys and
values of the wrong type with an error naming the file and the dotted key. YAML is read
with ``yaml.safe_load`` only: a config is data, never code.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline.core.errors import ConfigError

T = TypeVar("T")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: file not found") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def merged(base: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``: mappings merge key by key, at any depth; anything else replaces."""
    out = dict(base)
    for key, value in child.items():
        out[key] = merged(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def from_mapping(cls: type[T], data: Any, source: str, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; ``source`` (a file name) and ``prefix`` go in errors."""
    where = f"{source}: {prefix or cls.__name__}"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(
            f"{source}: unknown key '{key}' (known keys: {', '.join(sorted(fields))})"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key '{key}'")
            continue
        values[name] = _coerce(hints[name], data[name], source, key)
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as error:
            raise ConfigError(f"{source}: {prefix or cls.__name__}: {error}") from error
    return obj


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, source, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{source}: '{key}' has an invalid value")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"{source}: '{key}' must be one of {', '.join(map(repr, args))}, got {value!r}"
            )
        return value
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, source, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{source}: '{key}' must have {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, source, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
        value_hint = args[1] if args else Any
        return {str(k): _coerce(value_hint, v, source, f"{key}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r} for '{key}'")
