"""Merge a file of overrides into params.yaml, e.g. to point the chain at another dataset.

    python -m pipeline.params_override configs/grocery.params.yaml [--params params.yaml]

Only keys that already exist in params.yaml may be overridden (a typo is an error naming
the key), so an override file cannot silently add a knob that nothing reads. The result is
an ordinary params.yaml change: ``dvc params diff`` shows it, ``git checkout params.yaml``
undoes it.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import yaml

from pipeline.cli import run_stage
from pipeline.config import read_yaml
from pipeline.errors import ConfigError
from pipeline.io_utils import write_text


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any], source: str, prefix: str = "") -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"{source}: '{dotted}' is not a key of params.yaml")
        if isinstance(value, Mapping) and isinstance(base[key], Mapping) and value:
            merged[key] = merge_overrides(base[key], value, source, f"{dotted}.")
        else:
            merged[key] = value
    return merged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", help="YAML file of overrides")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    merged = merge_overrides(read_yaml(args.params), read_yaml(args.overrides), args.overrides)
    write_text(args.params, yaml.safe_dump(merged, sort_keys=False))
    print(f"{args.params}: applied {args.overrides}")


if __name__ == "__main__":
    run_stage(main)
