"""Label merges: identities that a reviewed list declares to be one (duplicate product ids).

A merge file is a CSV ``label,merged_into``: each listed label is renamed to its
``merged_into`` label before the folds are drawn, so a merged identity sits in one fold
and trains as one class. The duplicates stage writes candidates in this format
(``outputs/duplicates/merge.csv``); a person reviews them and names the kept file in
``folds.label_merge``. A header-only file merges nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from pipeline.core.errors import DataError
from pipeline.core.io_utils import read_string_csv

COLUMNS = ("label", "merged_into")


def read_label_merge(path: str | Path) -> dict[str, str]:
    """{label: merged_into} from ``path``; bad files are errors that name the file and the label."""
    table = read_string_csv(path, COLUMNS, "label merge file not found")
    repeated = table["label"][table["label"].duplicated()]
    if len(repeated):
        raise DataError(f"{path}: label '{repeated.iloc[0]}' is listed more than once")
    merge = dict(zip(table["label"], table["merged_into"], strict=True))
    for label, target in merge.items():
        if not label or not target:
            raise DataError(f"{path}: empty label or merged_into in row '{label},{target}'")
        if label == target:
            raise DataError(f"{path}: label '{label}' is merged into itself")
        if target in merge:  # chains would make the result depend on the order of application
            raise DataError(f"{path}: '{label}' is merged into '{target}', which is itself merged; name the final label")
    return merge


def apply_label_merge(labels: pd.Series, merge: Mapping[str, str], source: str) -> pd.Series:
    """``labels`` (strings) with every merged label renamed; a merge of an unknown label is an error."""
    labels = labels.astype(str)
    present = set(labels)
    for label, target in merge.items():
        for name in (label, target):
            if name not in present:
                raise DataError(f"{source}: label '{name}' is not in the training labels")
    return labels.replace(dict(merge))
