"""Import a public dataset layout into the canonical one: import_data.py market1501|digix SRC DST."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli import run_stage
from pipeline.data.importers import import_digix, import_market1501

IMPORTERS = {"market1501": import_market1501, "digix": import_digix}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("format", choices=sorted(IMPORTERS), help="layout of SRC")
    parser.add_argument("src", type=Path, help="the dataset folder as downloaded")
    parser.add_argument("dst", type=Path, help="new folder for the canonical layout (must not exist or be empty)")
    args = parser.parse_args(argv)
    dataset = IMPORTERS[args.format](args.src, args.dst)
    print(f"{args.dst}: train {len(dataset.train)}, query {len(dataset.query)}, gallery {len(dataset.gallery)} images")


if __name__ == "__main__":
    run_stage(main)
