"""Import a public dataset layout into the canonical one: import_data.py FORMAT SRC DST.

Formats (see pipeline/data/importers.py): market1501, dukemtmc-reid, cuhk03-np-detected and
cuhk03-np-labeled (SRC: the cuhk03-np folder), msmt17 and msmt17-trainval (SRC: MSMT17_V1 or
MSMT17_V2; trainval adds list_val.txt to train), pid-cam (train/, query/, gallery/ of
<pid>_<camera>_*.jpg files), digix.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from pipeline.core.cli import run_stage
from pipeline.data.importers import (
    import_cuhk03_np,
    import_digix,
    import_dukemtmc,
    import_market1501,
    import_msmt17,
    import_pid_cam,
)

IMPORTERS = {
    "market1501": import_market1501,
    "dukemtmc-reid": import_dukemtmc,
    "cuhk03-np-detected": partial(import_cuhk03_np, images="detected"),
    "cuhk03-np-labeled": partial(import_cuhk03_np, images="labeled"),
    "msmt17": import_msmt17,
    "msmt17-trainval": partial(import_msmt17, with_val=True),
    "pid-cam": import_pid_cam,
    "digix": import_digix,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("format", choices=list(IMPORTERS), help="layout of SRC")
    parser.add_argument("src", type=Path, help="the dataset folder as downloaded")
    parser.add_argument("dst", type=Path, help="new folder for the canonical layout (must not exist or be empty)")
    args = parser.parse_args(argv)
    dataset = IMPORTERS[args.format](args.src, args.dst)
    print(f"{args.dst}: train {len(dataset.train)}, query {len(dataset.query)}, gallery {len(dataset.gallery)} images")


if __name__ == "__main__":
    run_stage(main)
