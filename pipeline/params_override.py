"""Merge a file of overrides into params.yaml, e.g. to point the chain at another dataset.

    python -m pipeline.params_override configs/grocery.params.yaml [--params params.yaml]

Only keys that already exist in params.yaml may be overridden (a typo is an error naming
the key), so an override file cannot silently add a knob that nothing reads. The file is
rewritten with ruamel.yaml's round-trip mode, which keeps its comments and key order, so the
result is an ordinary params.yaml change: ``dvc params diff`` shows it, ``git checkout
params.yaml`` undoes it.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from collections.abc import MutableMapping
from typing import Any

from ruamel.yaml import YAML

from pipeline.core.cli import run_stage
from pipeline.core.config import read_yaml
from pipeline.core.errors import ConfigError
from pipeline.core.io_utils import write_text


def merge_overrides(base: MutableMapping[str, Any], overrides: MutableMapping[str, Any], source: str, prefix: str = "") -> None:
    """Write ``overrides`` into ``base`` in place (so a round-trip mapping keeps its comments)."""
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"{source}: '{dotted}' is not a key of params.yaml")
        if isinstance(value, MutableMapping) and isinstance(base[key], MutableMapping) and value:
            merge_overrides(base[key], value, source, f"{dotted}.")
        else:
            base[key] = value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", help="YAML file of overrides")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    read_yaml(args.params)  # the strict reader's errors name the file; ruamel then edits it
    yaml = YAML()  # round-trip mode: safe loading of plain data, comments kept
    params = yaml.load(Path(args.params).read_text(encoding="utf-8"))
    merge_overrides(params, read_yaml(args.overrides), args.overrides)
    text = io.StringIO()
    yaml.dump(params, text)
    write_text(args.params, text.getvalue())
    print(f"{args.params}: applied {args.overrides}")


if __name__ == "__main__":
    run_stage(main)
