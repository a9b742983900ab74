"""Preprocess cache: round trip against decoding the source images, atomicity, and the stage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.cache import build_cache, open_split
from pipeline.data.images import read_image, write_image
from pipeline.data.layout import SPLITS, write_split
from pipeline.data.rescale_pad import rescale_pad
from pipeline.core.errors import ConfigError, DataError
from pipeline.core.params import load_section
from pipeline.core.sections import PreprocessConfig

REPO = Path(__file__).resolve().parents[1]


def _dataset(root: Path) -> None:
    """A tiny canonical dataset with varied sizes and both formats."""
    rng = np.random.default_rng(0)
    shapes = [(20, 30), (31, 17), (16, 16), (40, 12), (25, 25), (13, 29)]
    names = []
    for i, (h, w) in enumerate(shapes):
        name = f"images/{i:02d}.{'png' if i % 2 else 'jpg'}"
        write_image(root / name, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        names.append(name)
    write_split(root, "train", pd.DataFrame({"image": names[:3], "label": ["007", "007", "8"]}))
    write_split(root, "query", pd.DataFrame({"image": names[3:4], "label": ["8"], "camera": ["c1"]}))
    write_split(root, "gallery", pd.DataFrame({"image": names[4:]}))


def test_round_trip_matches_decode_then_rescale_pad(tmp_path: Path) -> None:
    _dataset(tmp_path / "data")
    build_cache(tmp_path / "data", tmp_path / "cache", 12, (5, 6, 7), workers=2)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        f"{s}.{ext}" for s in SPLITS for ext in ("csv", "npy")
    )
    for split in SPLITS:
        cached = open_split(tmp_path / "cache", split)
        assert isinstance(cached.images, np.memmap) and not cached.images.flags.writeable
        assert cached.images.shape == (len(cached.table), 12, 12, 3) and cached.images.dtype == np.uint8
        for row, image in enumerate(cached.table["image"]):
            reference = rescale_pad(read_image(tmp_path / "data" / image), 12, (5, 6, 7))
            np.testing.assert_array_equal(cached.images[row], reference)
    train = open_split(tmp_path / "cache", "train").table
    assert train["label"].tolist() == ["007", "007", "8"]
    assert open_split(tmp_path / "cache", "query").table["camera"].tolist() == ["c1"]


def test_a_bad_image_fails_by_name_and_leaves_the_old_cache(tmp_path: Path) -> None:
    _dataset(tmp_path / "data")
    build_cache(tmp_path / "data", tmp_path / "cache", 8, (0, 0, 0))
    before = (tmp_path / "cache" / "gallery.npy").read_bytes()
    (tmp_path / "data" / "images" / "05.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"images/05\.png: empty file"):
        build_cache(tmp_path / "data", tmp_path / "cache", 8, (0, 0, 0))
    assert (tmp_path / "cache" / "gallery.npy").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_open_split_errors(tmp_path: Path) -> None:
    _dataset(tmp_path / "data")
    build_cache(tmp_path / "data", tmp_path / "cache", 8, (0, 0, 0))
    with pytest.raises(DataError, match=r"nowhere/train\.npy: file not found"):
        open_split(tmp_path / "nowhere", "train")
    np.save(tmp_path / "cache" / "query.npy", np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(DataError, match=r"query\.npy: expected uint8 \(N, H, W, 3\)"):
        open_split(tmp_path / "cache", "query")
    np.save(tmp_path / "cache" / "gallery.npy", np.zeros((5, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match=r"gallery\.csv: 2 rows but gallery\.npy holds 5 images"):
        open_split(tmp_path / "cache", "gallery")
    (tmp_path / "cache" / "train.csv").unlink()
    with pytest.raises(DataError, match=r"train\.csv: file not found"):
        open_split(tmp_path / "cache", "train")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{size: 4}", "size must be at least 8"),
        ("{fill: [0, 0, 300]}", "fill must be three values"),
        ("{fill: [0, 0]}", "must have 3 items"),
        ("{sise: 64}", "unknown key 'preprocess.sise'"),
    ],
)
def test_config_validation(tmp_path: Path, section: str, message: str) -> None:
    (tmp_path / "params.yaml").write_text(f"preprocess: {section}\n")
    with pytest.raises(ConfigError, match=message):
        load_section("preprocess", PreprocessConfig, tmp_path / "params.yaml")


def _run_stage(tmp_path: Path, params: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "params.yaml").write_text(params)
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / "preprocess.py"), "--params", "params.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )


def test_stage_reads_denoise_out_and_writes_the_cache(tmp_path: Path) -> None:
    _dataset(tmp_path / "clean")
    done = _run_stage(tmp_path, "denoise: {out: clean}\npreprocess: {out: cache, size: 10, fill: [1, 2, 3]}\n")
    assert done.returncode == 0, done.stderr
    assert open_split(tmp_path / "cache", "gallery").images.shape == (2, 10, 10, 3)


def test_stage_without_denoise_section_is_a_one_line_error(tmp_path: Path) -> None:
    done = _run_stage(tmp_path, "preprocess: {size: 16}\n")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: params.yaml: missing section 'denoise'"
