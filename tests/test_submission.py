"""The submission file: exact format, write/read round trip, and a clear error per malformed case."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.evaluate.submission import read_submission, write_submission

QUERIES = ["images/query/q1.jpg", "images/query/q2.jpg"]
GALLERY = ["images/gallery/g0.jpg", "images/gallery/g1.jpg", "images/gallery/g2.jpg", "images/gallery/g3.jpg"]


def test_exact_format(tmp_path) -> None:
    path = tmp_path / "submission.csv"
    write_submission(path, QUERIES, GALLERY, np.array([[2, 0, 3], [1, 3, 0]]), length=2)
    assert path.read_text() == "q1.jpg,{g2.jpg,g0.jpg}\nq2.jpg,{g1.jpg,g3.jpg}\n"


@pytest.mark.parametrize("seed", range(3))
def test_round_trip(tmp_path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    queries = [f"data/q/{i:05d}.jpg" for i in range(40)]
    gallery = [f"data/g/{i:05d}.png" for i in range(60)]
    ranked = np.stack([rng.permutation(60)[:12] for _ in queries])
    path = tmp_path / "submission.csv"
    write_submission(path, queries, gallery, ranked)  # default length 10
    assert len(path.read_text().splitlines()) == 40
    np.testing.assert_array_equal(read_submission(path, queries, gallery), ranked[:, :10])


def test_reader_accepts_any_line_order_and_crlf(tmp_path) -> None:
    path = tmp_path / "submission.csv"
    path.write_bytes(b"q2.jpg,{g1.jpg,g3.jpg}\r\nq1.jpg,{g2.jpg,g0.jpg}\r\n")
    np.testing.assert_array_equal(read_submission(path, QUERIES, GALLERY, length=2), [[2, 0], [1, 3]])


@pytest.mark.parametrize(
    ("content", "where", "message"),
    [
        ("q1.jpg,g2.jpg,g0.jpg\n", ":1:", "expected 'query.jpg"),
        ("query,gallery\n", ":1:", "expected 'query.jpg"),
        ("q1.jpg,{g2.jpg,g0.jpg}\n\nq2.jpg,{g1.jpg,g3.jpg}\n", ":2:", "expected 'query.jpg"),
        ("q1.jpg,{g2.jpg,g0.jpg}\nq9.jpg,{g1.jpg,g3.jpg}\n", ":2:", "unknown query image 'q9.jpg'"),
        ("q1.jpg,{g2.jpg,g9.jpg}\nq2.jpg,{g1.jpg,g3.jpg}\n", ":1:", "unknown gallery image 'g9.jpg'"),
        ("q1.jpg,{g2.jpg,g0.jpg}\nq1.jpg,{g1.jpg,g3.jpg}\n", ":2:", "already has line 1"),
        ("q1.jpg,{g2.jpg}\nq2.jpg,{g1.jpg,g3.jpg}\n", ":1:", "expected 2 gallery images, found 1"),
        ("q1.jpg,{}\n", ":1:", "expected 2 gallery images, found 0"),
        ("q1.jpg,{g2.jpg,g0.jpg}\nq2.jpg,{g3.jpg,g3.jpg}\n", ":2:", "'g3.jpg' is listed twice"),
        ("q1.jpg,{g2.jpg,g0.jpg}\n", ":", "1 of 2 queries have no line \\(e.g. q2.jpg\\)"),
        ("", ":", "2 of 2 queries have no line"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, content: str, where: str, message: str) -> None:
    path = tmp_path / "submission.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}{where} .*{message}"):
        read_submission(path, QUERIES, GALLERY, length=2)


def test_missing_file_and_bad_length(tmp_path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_submission(tmp_path / "nope.csv", QUERIES, GALLERY, length=2)
    with pytest.raises(DataError, match="length 5 must lie in 1..4"):
        read_submission(tmp_path / "nope.csv", QUERIES, GALLERY, length=5)


@pytest.mark.parametrize(
    ("queries", "gallery", "ranked", "length", "message"),
    [
        (QUERIES, GALLERY, np.array([[0, 1], [1, 2]]), 5, "larger than the gallery"),
        (QUERIES, GALLERY, np.array([[0, 1], [1, 2]]), 3, "fewer than the cut-off"),
        (QUERIES, GALLERY, np.array([[0, 9], [1, 2]]), 2, "outside"),
        (QUERIES, GALLERY, np.array([[0, 1]]), 2, "rows"),
        (["a/q.jpg", "b/q.jpg"], GALLERY, np.array([[0, 1], [1, 2]]), 2, "rows 0 and 1 share the base name 'q.jpg'"),
        (QUERIES, ["g0.jpg", "g,1.jpg"], np.array([[0, 1], [1, 0]]), 2, "row 1: image name 'g,1.jpg'"),
        ([], GALLERY, np.zeros((0, 2), dtype=int), 2, "the set is empty"),
        (QUERIES, [], np.array([[0, 1], [1, 2]]), 2, "the set is empty"),
    ],
)
def test_writer_checks_everything_before_writing(tmp_path, queries, gallery, ranked, length, message) -> None:
    path = tmp_path / "submission.csv"
    path.write_text("previous\n")
    with pytest.raises(DataError, match=message):
        write_submission(path, queries, gallery, ranked, length=length)
    assert path.read_text() == "previous\n"  # nothing written half
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]  # no temporary left behind
