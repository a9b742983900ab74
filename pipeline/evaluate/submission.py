"""The leaderboard submission: ``query.jpg,{g1.jpg,g2.jpg,...,g10.jpg}`` per line, no header.

Names are the base names of the ``image`` paths in query.csv / gallery.csv
(``images/query/q00001.jpg`` -> ``q00001.jpg``), so they must be unique within each set
and free of the format's own punctuation (``,{}``). Lines follow the query order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.data.layout import submission_name, unsubmittable
from pipeline.core.errors import DataError
from pipeline.evaluate.metrics import check_ranking
from pipeline.core.io_utils import read_text, write_text

_LINE = re.compile(r"([^,{}]+),\{([^{}]*)\}")


def image_names(paths: Sequence[str | os.PathLike[str]], what: str) -> list[str]:
    """Base names of ``paths``; DataError if one is empty, holds ``,{}`` or occurs twice."""
    names = [submission_name(os.fspath(p)) for p in paths]
    if not names:
        raise DataError(f"{what}: the set is empty")
    first_row: dict[str, int] = {}
    for row, name in enumerate(names):
        if unsubmittable(name):
            raise DataError(f"{what}: row {row}: image name {name!r} is empty or contains one of , {{ }} or a line break")
        if name in first_row:
            raise DataError(f"{what}: rows {first_row[name]} and {row} share the base name {name!r}")
        first_row[name] = row
    return names


def write_submission(
    path: str | os.PathLike[str],
    query_names: Sequence[str],
    gallery_names: Sequence[str],
    ranked: np.ndarray,
    length: int = 10,
) -> None:
    """Write the first ``length`` gallery images of each query's ranking, atomically.

    ``ranked`` is (Nq, >=length) gallery indices, best first. Everything is checked
    before a byte is written, so a bad input leaves no file behind.
    """
    queries = image_names(query_names, "query images")
    gallery = np.asarray(image_names(gallery_names, "gallery images"), dtype=object)
    top = check_ranking(ranked, len(queries), gallery.size, length)
    lines = [f"{query},{{{','.join(gallery[row])}}}" for query, row in zip(queries, top, strict=True)]
    write_text(path, "\n".join(lines) + "\n")


def read_submission(
    path: str | os.PathLike[str],
    query_names: Sequence[str],
    gallery_names: Sequence[str],
    length: int = 10,
) -> np.ndarray:
    """Gallery indices (Nq, length) int64 in query order, read back from a submission.

    DataError naming the file and line for: a malformed line, an unknown query or
    gallery image, a repeated query, a line with the wrong number of gallery images or
    the same gallery image twice; and naming the file for queries without a line.
    """
    path = Path(path)
    queries = image_names(query_names, "query images")
    gallery = image_names(gallery_names, "gallery images")
    if not 1 <= length <= len(gallery):
        raise DataError(f"{path}: submission length {length} must lie in 1..{len(gallery)} (the gallery size)")
    query_index = {name: i for i, name in enumerate(queries)}
    gallery_index = {name: i for i, name in enumerate(gallery)}
    text = read_text(path)

    ranked = np.zeros((len(queries), length), dtype=np.int64)
    line_of_query = np.zeros(len(queries), dtype=np.int64)  # 0 = not seen yet
    for line_no, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{line_no}"
        match = _LINE.fullmatch(line)
        if match is None:
            raise DataError(f"{where}: expected 'query.jpg,{{g1.jpg,...}}', got {line[:80]!r}")
        query, listed = match.group(1), match.group(2)
        q = query_index.get(query)
        if q is None:
            raise DataError(f"{where}: unknown query image {query!r}")
        if line_of_query[q]:
            raise DataError(f"{where}: query {query!r} already has line {line_of_query[q]}")
        names = listed.split(",") if listed else []
        if len(names) != length:
            raise DataError(f"{where}: expected {length} gallery images, found {len(names)}")
        for rank, name in enumerate(names):
            g = gallery_index.get(name)
            if g is None:
                raise DataError(f"{where}: unknown gallery image {name!r}")
            ranked[q, rank] = g
        if len(set(names)) != length:
            repeated = next(name for name in names if names.count(name) > 1)
            raise DataError(f"{where}: gallery image {repeated!r} is listed twice")
        line_of_query[q] = line_no
    missing = np.flatnonzero(line_of_query == 0)
    if missing.size:
        examples = ", ".join(queries[i] for i in missing[:3])
        raise DataError(f"{path}: {missing.size} of {len(queries)} queries have no line (e.g. {examples})")
    return ranked
