"""Importers on tiny fake Market-1501, DukeMTMC-reID, CUHK03-NP, MSMT17, pid_cam and DIGIX
trees: tables, labels, cameras, links, and bad input."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.data import importers
from pipeline.data.importers import (
    import_cuhk03_np,
    import_digix,
    import_dukemtmc,
    import_market1501,
    import_msmt17,
    import_pid_cam,
)
from pipeline.data.layout import load_dataset
from pipeline.core.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def _files(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())  # distinct content per file


def _images(root: Path, *names: str) -> None:
    """Tiny real images (8 x 4 px, a distinct grey level each), in the format the suffix names."""
    for number, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 4, 3), 10 * number, np.uint8)).save(root / name)


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
    assert "bounding_box_test: skipped 1 junk (-1) images" in caplog.text
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


@pytest.fixture
def duke(tmp_path: Path) -> Path:
    src = tmp_path / "DukeMTMC-reID"
    _images(
        src,
        "bounding_box_train/0005_c2_f0046985.jpg",
        "bounding_box_train/0005_c5_f0051781.jpg",
        "bounding_box_train/0008_c1_f0044215.jpg",
        "query/0001_c2_f0046182.jpg",
        "bounding_box_test/0001_c5_f0051341.jpg",
        "bounding_box_test/0900_c8_f0131142.jpg",  # an identity only the gallery has (Duke's distractor ids)
    )
    return src


def test_dukemtmc(duke: Path, tmp_path: Path) -> None:
    dataset = import_dukemtmc(duke, tmp_path / "out")
    assert dataset.train.values.tolist() == [
        ["images/train/0005_c2_f0046985.jpg", "0005", "c2"],
        ["images/train/0005_c5_f0051781.jpg", "0005", "c5"],
        ["images/train/0008_c1_f0044215.jpg", "0008", "c1"],
    ]
    assert dataset.query.values.tolist() == [["images/query/0001_c2_f0046182.jpg", "0001", "c2"]]
    assert dataset.gallery.values.tolist() == [
        ["images/gallery/0001_c5_f0051341.jpg", "0001", "c5"],
        ["images/gallery/0900_c8_f0131142.jpg", "0900", "c8"],
    ]
    copied = Image.open(tmp_path / "out" / "images" / "gallery" / "0900_c8_f0131142.jpg")
    assert copied.size == (4, 8)


def test_dukemtmc_bad_name(duke: Path, tmp_path: Path) -> None:
    _images(duke, "bounding_box_test/0001_f0051341.jpg")
    with pytest.raises(DataError, match=r"bounding_box_test/0001_f0051341\.jpg: not a DukeMTMC-reID file name"):
        import_dukemtmc(duke, tmp_path / "out")


@pytest.fixture
def cuhk03(tmp_path: Path) -> Path:
    src = tmp_path / "cuhk03-np"
    for images in ("detected", "labeled"):
        _images(
            src / images,
            "bounding_box_train/0001_c1_1.png",
            "bounding_box_train/0001_c2_6.png",
            "query/0768_c1_1.png",
            "bounding_box_test/0768_c2_7.png",
            "bounding_box_test/0769_c2_6.png",
        )
    _images(src / "labeled", "bounding_box_train/0002_c1_2.png")  # the box sets differ
    return src


@pytest.mark.parametrize(("images", "train"), [("detected", 2), ("labeled", 3)])
def test_cuhk03_np(cuhk03: Path, tmp_path: Path, images: str, train: int) -> None:
    dataset = import_cuhk03_np(cuhk03, tmp_path / "out", images=images)
    assert dataset.train.values.tolist()[:2] == [
        ["images/train/0001_c1_1.png", "0001", "c1"],
        ["images/train/0001_c2_6.png", "0001", "c2"],
    ]
    assert len(dataset.train) == train
    assert dataset.query.values.tolist() == [["images/query/0768_c1_1.png", "0768", "c1"]]
    assert dataset.gallery.values.tolist() == [
        ["images/gallery/0768_c2_7.png", "0768", "c2"],
        ["images/gallery/0769_c2_6.png", "0769", "c2"],
    ]
    source = cuhk03 / images / "query" / "0768_c1_1.png"
    assert (tmp_path / "out" / "images" / "query" / "0768_c1_1.png").read_bytes() == source.read_bytes()


def test_cuhk03_np_missing_box_set(cuhk03: Path, tmp_path: Path) -> None:
    for path in sorted((cuhk03 / "labeled").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (cuhk03 / "labeled").rmdir()
    with pytest.raises(DataError, match=r"cuhk03-np/labeled: folder not found \(CUHK03-NP holds detected/ and labeled/\)"):
        import_cuhk03_np(cuhk03, tmp_path / "out", images="labeled")
    assert not (tmp_path / "out").exists()


def test_cuhk03_np_bad_name(cuhk03: Path, tmp_path: Path) -> None:
    _images(cuhk03 / "detected", "query/c1_0768.png")
    with pytest.raises(DataError, match=r"detected/query/c1_0768\.png: not a CUHK03-NP file name"):
        import_cuhk03_np(cuhk03, tmp_path / "out")


MSMT17_TRAIN = ["0000/0000_000_01_0303morning_0015_0.jpg", "0000/0000_001_05_0303morning_0020_1.jpg",
                "0001/0001_000_14_0303noon_0102_0.jpg"]
MSMT17_VAL = ["0001/0001_002_15_0303noon_0150_2.jpg"]
MSMT17_TEST = ["0000/0000_000_01_0303morning_0036_1.jpg", "0000/0000_003_07_0303afternoon_0540_0.jpg",
               "0001/0001_000_02_0303noon_0412_0.jpg"]


def _write_lists(root: Path, **lists: list[str]) -> None:
    for name, lines in lists.items():
        (root / f"list_{name}.txt").write_text("".join(f"{line}\n" for line in lines))


@pytest.fixture
def msmt17(tmp_path: Path) -> Path:
    src = tmp_path / "MSMT17_V1"
    _images(src / "train", *MSMT17_TRAIN, *MSMT17_VAL)
    _images(src / "test", *MSMT17_TEST)
    pid = lambda path: str(int(path.split("/")[0]))  # noqa: E731 - the list's pid: the folder's, unpadded
    _write_lists(
        src,
        train=[f"{p} {pid(p)}" for p in MSMT17_TRAIN],
        val=[f"{p} {pid(p)}" for p in MSMT17_VAL],
        query=[f"{MSMT17_TEST[0]} 0", f"{MSMT17_TEST[2]} 1"],
        gallery=[f"{MSMT17_TEST[1]} 0"],
    )
    return src


def test_msmt17(msmt17: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pipeline.data.importers"):
        dataset = import_msmt17(msmt17, tmp_path / "out")
    assert dataset.train.values.tolist() == [
        ["images/train/0000/0000_000_01_0303morning_0015_0.jpg", "0", "c1"],
        ["images/train/0000/0000_001_05_0303morning_0020_1.jpg", "0", "c5"],
        ["images/train/0001/0001_000_14_0303noon_0102_0.jpg", "1", "c14"],
    ]
    # test ids restart at 0: their labels are kept apart from the training ids'
    assert dataset.query.values.tolist() == [
        ["images/query/0000/0000_000_01_0303morning_0036_1.jpg", "test_0", "c1"],
        ["images/query/0001/0001_000_02_0303noon_0412_0.jpg", "test_1", "c2"],
    ]
    assert dataset.gallery.values.tolist() == [["images/gallery/0000/0000_003_07_0303afternoon_0540_0.jpg", "test_0", "c7"]]
    assert "list_val.txt: left out of train" in caplog.text


def test_msmt17_trainval_and_v2_folders(msmt17: Path, tmp_path: Path) -> None:
    v2 = tmp_path / "MSMT17_V2"
    msmt17.rename(v2)
    (v2 / "train").rename(v2 / "mask_train_v2")
    (v2 / "test").rename(v2 / "mask_test_v2")
    dataset = import_msmt17(v2, tmp_path / "out", with_val=True)
    assert dataset.train.values.tolist()[-1] == ["images/train/0001/0001_002_15_0303noon_0150_2.jpg", "1", "c15"]
    assert len(dataset.train) == 4


@pytest.mark.parametrize(
    ("lists", "message"),
    [
        ({"query": [f"{MSMT17_TEST[0]}"]}, r"list_query\.txt: line 1: expected 'relative/path\.jpg pid'"),
        ({"query": [f"{MSMT17_TEST[0]} zero"]}, r"list_query\.txt: line 1: expected 'relative/path\.jpg pid'"),
        ({"gallery": ["", "0000/photo.jpg 0"]}, r"list_gallery\.txt: line 2: '0000/photo\.jpg' is not an MSMT17 file name"),
        ({"gallery": ["0002/0002_000_03_0303noon_0001_0.jpg 2"]}, r"list_gallery\.txt: line 1: image file not found: .*0002_000_03"),
        ({"gallery": [f"{MSMT17_TEST[0]} 0"]}, r"list_gallery\.txt: line 1: image '.*' is listed twice \(first in list_query\.txt: line 1\)"),
        ({"train": ["../../etc/x_0_01_a.jpg 0"]}, r"list_train\.txt: line 1: image path '\.\./\.\./etc/x_0_01_a\.jpg' points outside"),
    ],
)
def test_msmt17_bad_list(msmt17: Path, tmp_path: Path, lists: dict[str, list[str]], message: str) -> None:
    _write_lists(msmt17, **lists)
    with pytest.raises(DataError, match=message):
        import_msmt17(msmt17, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_msmt17_missing_parts(msmt17: Path, tmp_path: Path) -> None:
    (msmt17 / "list_gallery.txt").unlink()
    with pytest.raises(DataError, match=r"MSMT17_V1/list_gallery\.txt: file not found"):
        import_msmt17(msmt17, tmp_path / "out")
    (msmt17 / "test").rename(msmt17 / "testing")
    with pytest.raises(DataError, match=r"MSMT17_V1: no MSMT17 image folders \(expected train/ \+ test/ \(MSMT17_V1\)"):
        import_msmt17(msmt17, tmp_path / "out")


@pytest.fixture
def pid_cam(tmp_path: Path) -> Path:
    src = tmp_path / "mine"
    _images(src, "train/alice_camA_0001.jpg", "train/alice_camB_0002.png", "train/bob_camA_x_y.jpg")
    _images(src, "query/carol_camA_0001.jpg", "gallery/carol_camB_0007.jpg", "gallery/dave_camB_0001.jpg")
    return src


def test_pid_cam(pid_cam: Path, tmp_path: Path) -> None:
    dataset = import_pid_cam(pid_cam, tmp_path / "out")
    assert dataset.train.values.tolist() == [
        ["images/train/alice_camA_0001.jpg", "alice", "camA"],
        ["images/train/alice_camB_0002.png", "alice", "camB"],
        ["images/train/bob_camA_x_y.jpg", "bob", "camA"],
    ]
    assert dataset.query.values.tolist() == [["images/query/carol_camA_0001.jpg", "carol", "camA"]]
    assert dataset.gallery["label"].tolist() == ["carol", "dave"]


@pytest.mark.parametrize("name", ["alice.jpg", "alice_camA.jpg", "_camA_1.jpg", "alice__1.jpg"])
def test_pid_cam_bad_name(pid_cam: Path, tmp_path: Path, name: str) -> None:
    _images(pid_cam, f"gallery/{name}")
    with pytest.raises(DataError, match=f"gallery/{re.escape(name)}: not a pid_cam file name"):
        import_pid_cam(pid_cam, tmp_path / "out")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / "import_data.py"), *args], capture_output=True, text=True, timeout=120
    )


def test_cli(digix: Path, pid_cam: Path, tmp_path: Path) -> None:
    done = _cli("digix", str(digix), str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("train 3, query 1, gallery 2 images")
    done = _cli("pid-cam", str(pid_cam), str(tmp_path / "out3"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("train 3, query 1, gallery 2 images")
    failed = _cli("market1501", str(digix), str(tmp_path / "out2"))
    assert failed.returncode == 2
    assert failed.stderr.strip() == f"error: {digix / 'bounding_box_train'}: folder not found"
