"""Importers on tiny fake Market-1501 and DIGIX trees: tables, labels, links, and bad input."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.data import importers
from pipeline.data.importers import import_digix, import_market1501
from pipeline.data.layout import load_dataset
from pipeline.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def _files(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())  # distinct content per file


@pytest.fixture
def market(tmp_path: Path) -> Path:
    src = tmp_path / "Market-1501"
    _files(
        src,
        "bounding_box_train/0002_c1s1_000451_03.jpg",
        "bounding_box_train/0002_c2s1_000551_01.jpg",
        "bounding_box_train/0007_c3s1_000101_01.jpg",
        "bounding_box_train/Thumbs.db",
        "query/0002_c1s1_001051_00.jpg",
        "bounding_box_test/0002_c2s1_000001_01.jpg",
        "bounding_box_test/0000_c1s1_000002_01.jpg",
        "bounding_box_test/-1_c1s1_000003_01.jpg",
    )
    return src


def test_market1501(market: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pipeline.data.importers"):
        dataset = import_market1501(market, tmp_path / "out")
    assert dataset.root == tmp_path / "out"
    assert dataset.train.values.tolist() == [
        ["images/train/0002_c1s1_000451_03.jpg", "0002", "c1"],
        ["images/train/0002_c2s1_000551_01.jpg", "0002", "c2"],
        ["images/train/0007_c3s1_000101_01.jpg", "0007", "c3"],
    ]
    assert dataset.query.values.tolist() == [["images/query/0002_c1s1_001051_00.jpg", "0002", "c1"]]
    assert dataset.gallery.values.tolist() == [
        ["images/gallery/0000_c1s1_000002_01.jpg", "-1", "c1"],  # distractor kept, matches no query
        ["images/gallery/0002_c2s1_000001_01.jpg", "0002", "c2"],
    ]
    assert "skipped 1 junk (-1) and 0 distractor (0000) images" in caplog.text
    source = market / "bounding_box_train" / "0002_c1s1_000451_03.jpg"
    target = tmp_path / "out" / "images" / "train" / "0002_c1s1_000451_03.jpg"
    assert os.stat(source).st_ino == os.stat(target).st_ino  # hard link, no copy
    assert load_dataset(tmp_path / "out").train.equals(dataset.train)


def test_copy_when_linking_fails(market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(importers.os, "link", refuse)
    import_market1501(market, tmp_path / "out")
    source = market / "query" / "0002_c1s1_001051_00.jpg"
    target = tmp_path / "out" / "images" / "query" / "0002_c1s1_001051_00.jpg"
    assert target.read_bytes() == source.read_bytes()
    assert os.stat(source).st_ino != os.stat(target).st_ino


def test_market_distractor_outside_gallery_is_skipped(market: Path, tmp_path: Path) -> None:
    _files(market, "bounding_box_train/0000_c1s1_000009_01.jpg")
    dataset = import_market1501(market, tmp_path / "out")
    assert "0000" not in set(dataset.train["label"]) and len(dataset.train) == 3


def test_market_bad_name(market: Path, tmp_path: Path) -> None:
    _files(market, "query/person.jpg")
    with pytest.raises(DataError, match=r"query/person\.jpg: not a Market-1501 file name"):
        import_market1501(market, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_market_missing_folder(market: Path, tmp_path: Path) -> None:
    (market / "query" / "0002_c1s1_001051_00.jpg").unlink()
    (market / "query").rmdir()
    with pytest.raises(DataError, match=r"Market-1501/query: folder not found"):
        import_market1501(market, tmp_path / "out")


def test_market_empty_split_fails_before_writing(market: Path, tmp_path: Path) -> None:
    (market / "query" / "0002_c1s1_001051_00.jpg").unlink()
    with pytest.raises(DataError, match=r"query\.csv: no data rows"):
        import_market1501(market, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_empty_destination_is_left_alone(market: Path, tmp_path: Path) -> None:
    _files(tmp_path / "out", "keep.txt")
    with pytest.raises(DataError, match="destination exists and is not an empty folder"):
        import_market1501(market, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


@pytest.fixture
def digix(tmp_path: Path) -> Path:
    src = tmp_path / "digix"
    _files(src, "train/DIGIX_000/a.jpg", "train/DIGIX_000/b.jpg", "train/DIGIX_001/c.jpg", "train/DIGIX_001/unlisted.jpg")
    _files(src, "query/q1.jpg", "gallery/g2.png", "gallery/g1.jpg", "gallery/readme.txt")
    (src / "train" / "label.txt").write_text("DIGIX_000/a.jpg,0\nDIGIX_000/b.jpg, 0\n\nDIGIX_001/c.jpg,007\n")
    return src


def test_digix(digix: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pipeline.data.importers"):
        dataset = import_digix(digix, tmp_path / "out")
    assert dataset.train.values.tolist() == [
        ["images/train/DIGIX_000/a.jpg", "0"],
        ["images/train/DIGIX_000/b.jpg", "0"],
        ["images/train/DIGIX_001/c.jpg", "007"],
    ]
    assert list(dataset.query.columns) == ["image"]
    assert dataset.query["image"].tolist() == ["images/query/q1.jpg"]
    assert dataset.gallery["image"].tolist() == ["images/gallery/g1.jpg", "images/gallery/g2.png"]
    assert (tmp_path / "out" / "images" / "train" / "DIGIX_001" / "c.jpg").read_bytes() == b"train/DIGIX_001/c.jpg"
    assert "left out 1 images" in caplog.text


def test_digix_label_file_beside_the_folders(digix: Path, tmp_path: Path) -> None:
    (digix / "train" / "label.txt").rename(digix / "label.txt")
    assert len(import_digix(digix, tmp_path / "out").train) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DIGIX_000/a.jpg,0\nDIGIX_000/b.jpg\n", r"label\.txt: line 2: expected 'relative/path\.jpg,label'"),
        ("DIGIX_000/a.jpg,\n", r"label\.txt: line 1: expected"),
        ("DIGIX_000/a.jpg,0\n\n../../secret.jpg,1\n", r"label\.txt: line 3: image path '\.\./\.\./secret\.jpg' points outside"),
        ("/etc/passwd,1\n", r"label\.txt: line 1: image path '/etc/passwd' is absolute"),
        ("DIGIX_000/a.jpg,0\nDIGIX_000/a.jpg,1\n", r"label\.txt: line 2: duplicate image .* \(first listed on line 1\)"),
        ("DIGIX_000/missing.jpg,0\n", r"label\.txt: line 1: image file not found: .*missing\.jpg"),
    ],
)
def test_digix_bad_label_file(digix: Path, tmp_path: Path, text: str, message: str) -> None:
    (digix / "train" / "label.txt").write_text(text)
    with pytest.raises(DataError, match=message):
        import_digix(digix, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_digix_missing_label_file(digix: Path, tmp_path: Path) -> None:
    (digix / "train" / "label.txt").unlink()
    with pytest.raises(DataError, match=r"train/label\.txt: file not found"):
        import_digix(digix, tmp_path / "out")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / "import_data.py"), *args], capture_output=True, text=True, timeout=120
    )


def test_cli(digix: Path, tmp_path: Path) -> None:
    done = _cli("digix", str(digix), str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("train 3, query 1, gallery 2 images")
    failed = _cli("market1501", str(digix), str(tmp_path / "out2"))
    assert failed.returncode == 2
    assert failed.stderr.strip() == f"error: {digix / 'bounding_box_train'}: folder not found"
