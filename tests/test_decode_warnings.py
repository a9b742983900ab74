"""What a decode passes over in silence is named: damaged JPEG scan data (Pillow decodes it
without a word, garbage below the damage) and frames after the first (an animated GIF, a
multi-page TIFF). The denoise stage reports each image and counts them, or stops with
``dataset.strict_decode``; a backslash path in a CSV reaches the file the reader checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.data.images import decode_warnings, read_image
from pipeline.data.layout import write_split
from pipeline.denoise.dataset import NOT_EXAMINED, REPORT_COLUMNS, denoise_dataset
from pipeline.core.errors import DataError
from pipeline.core.sections import DenoiseConfig


def _photo(seed: int = 0, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A smooth gradient with a little texture: nothing the noise detector flags."""
    rows, cols = np.indices(size)
    base = np.stack([rows * 2, cols * 2, (rows + cols)], axis=-1) % 256
    return (base + np.random.default_rng(seed).integers(0, 3, base.shape)).astype(np.uint8)


def _damaged_jpeg(path: Path) -> None:
    """A JPEG with 64 bytes of its scan data overwritten, as the issue's damaged file."""
    Image.fromarray(_photo()).save(path, quality=90)
    data = bytearray(path.read_bytes())
    start = data.find(b"\xff\xda") + 200  # inside the entropy-coded scan, after the SOS header
    data[start : start + 64] = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _frames(path: Path, count: int) -> None:
    frames = [Image.fromarray(_photo(seed)) for seed in range(count)]
    frames[0].save(path, save_all=True, append_images=frames[1:])


def test_damaged_jpeg_data_decodes_silently_but_is_named(tmp_path: Path) -> None:
    path = tmp_path / "damaged.jpg"
    _damaged_jpeg(path)
    pixels = read_image(path)  # Pillow: no error, no warning ...
    assert np.abs(pixels.astype(int) - _photo()).mean() > 20  # ... and garbage below the damage
    assert decode_warnings(path) == ["damaged JPEG data (Corrupt JPEG data: premature end of data segment)"]


def test_clean_files_of_every_kind_have_no_warning(tmp_path: Path) -> None:
    for name in ("clean.jpg", "clean.png", "clean.gif", "progressive.jpg"):
        Image.fromarray(_photo()).save(tmp_path / name, **({"progressive": True} if name.startswith("p") else {}))
        assert decode_warnings(tmp_path / name) == [], name
    Image.fromarray(_photo()).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert decode_warnings(tmp_path / "cmyk.jpg") == []


@pytest.mark.parametrize(("name", "count"), [("animated.gif", 3), ("pages.tiff", 2), ("animated.webp", 4)])
def test_frames_after_the_first_are_counted(tmp_path: Path, name: str, count: int) -> None:
    _frames(tmp_path / name, count)
    assert read_image(tmp_path / name).shape == (96, 128, 3)  # the first frame
    assert decode_warnings(tmp_path / name) == [f"{count} frames, the first one read"]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Query and gallery of clean photos plus a damaged query JPEG; train with a 3-frame GIF;
    one gallery row written with a backslash."""
    root = tmp_path / "data"
    (root / "img").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(_photo(i)).save(root / "img" / f"t{i}.png")
    _frames(root / "img" / "t4.gif", 3)
    Image.fromarray(_photo(7)).save(root / "img" / "q0.jpg", quality=95)
    _damaged_jpeg(root / "img" / "q1.jpg")
    Image.fromarray(_photo(8)).save(root / "img" / "g0.png")
    Image.fromarray(_photo(9)).save(root / "img" / "g1.png")
    write_split(root, "train", pd.DataFrame({"image": [f"img/t{i}.png" for i in range(4)] + ["img/t4.gif"],
                                             "label": ["a", "a", "b", "b", "b"]}))
    write_split(root, "query", pd.DataFrame({"image": ["img/q0.jpg", "img/q1.jpg"]}))
    (root / "gallery.csv").write_text("image\nimg/g0.png\nimg\\g1.png\n", encoding="utf-8")
    return root


def test_the_denoise_report_lists_and_the_copy_keeps_each_warned_image(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "denoised"
    report = denoise_dataset(dataset, out, DenoiseConfig(workers=2))  # the warnings come back from worker processes
    assert list(report.columns) == REPORT_COLUMNS
    warned = report[report["decode_warning"] != ""].set_index("image")
    assert warned["decode_warning"].to_dict() == {
        "img/q1.jpg": "damaged JPEG data (Corrupt JPEG data: premature end of data segment)",
        "img/t4.gif": "3 frames, the first one read",
    }
    assert warned.loc["img/t4.gif", "noise"] == NOT_EXAMINED and warned.loc["img/q1.jpg", "noise"] != NOT_EXAMINED
    # every query/gallery image examined, the backslash one at the path the reader checked
    assert sorted(report.loc[report["noise"] != NOT_EXAMINED, "image"]) == ["img/g0.png", "img/g1.png", "img/q0.jpg", "img/q1.jpg"]
    assert (out / "img/g1.png").is_file() and (out / "img/t4.gif").is_file()
    saved = pd.read_csv(out / "report.csv", dtype=str, keep_default_na=False)
    assert saved.set_index("image").loc["img/t4.gif", "decode_warning"] == "3 frames, the first one read"


def test_strict_decode_stops_at_the_first_warned_image_naming_its_line(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"train\.csv: line 6: .*t4\.gif: 3 frames, the first one read "
                                        r"\(dataset\.strict_decode is on\)"):
        denoise_dataset(dataset, tmp_path / "denoised", DenoiseConfig(workers=1), strict_decode=True)
    assert not (tmp_path / "denoised").exists()  # nothing half-written
    (dataset / "train.csv").write_text("image,label\n" + "".join(f"img/t{i}.png,{'ab'[i // 2]}\n" for i in range(4)))
    with pytest.raises(DataError, match=r"query\.csv: line 3: .*q1\.jpg: damaged JPEG data \(Corrupt JPEG data: "
                                        r"premature end of data segment\) \(dataset\.strict_decode is on\)"):
        denoise_dataset(dataset, tmp_path / "denoised", DenoiseConfig(workers=1), strict_decode=True)


def test_the_stage_counts_warned_images_in_its_summary_line(dataset: Path, tmp_path: Path, caplog, monkeypatch) -> None:
    from stages.denoise import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(f"dataset: {{root: {dataset}}}\ndenoise: {{out: {tmp_path / 'denoised'}, workers: 1}}\n")
    with caplog.at_level("INFO"):
        main([])
    summary = next(r.getMessage() for r in caplog.records if "images examined" in r.getMessage())
    assert summary.startswith("4 images examined: ") and "; 2 decoded with a warning; " in summary
    (tmp_path / "params.yaml").write_text(
        f"dataset: {{root: {dataset}, strict_decode: true}}\ndenoise: {{out: {tmp_path / 'strict'}, workers: 1}}\n")
    with pytest.raises(DataError, match="strict_decode"):
        main([])
