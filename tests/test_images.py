"""read_image / write_image: every pixel format decodes to known RGB values; bad files fail by name."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.data.images import read_image, write_image
from pipeline.core.errors import DataError


def _rng_image(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _white_composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Reference: straight alpha over an opaque white background."""
    a = alpha.astype(np.float64)[..., None] / 255.0
    return rgb.astype(np.float64) * a + 255.0 * (1.0 - a)


def test_rgb_png_round_trip_is_exact(tmp_path: Path) -> None:
    rgb = _rng_image()
    write_image(tmp_path / "a.png", rgb)
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
    np.testing.assert_array_equal(out, rgb)


def test_channel_order_is_rgb_for_a_file_written_by_opencv(tmp_path: Path) -> None:
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[..., 0] = 200  # pure red in RGB
    cv2.imwrite(str(tmp_path / "red.png"), rgb[..., ::-1])  # OpenCV writes BGR
    out = read_image(tmp_path / "red.png")
    assert out[0, 0].tolist() == [200, 0, 0]


def test_jpeg_round_trip_is_close(tmp_path: Path) -> None:
    ramp = np.linspace(0, 255, 64, dtype=np.float64)
    rgb = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 128.0 * np.ones((64, 64))), axis=2).astype(np.uint8)
    write_image(tmp_path / "a.jpg", rgb)
    out = read_image(tmp_path / "a.jpg")
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 2.0


def test_grayscale_is_replicated(tmp_path: Path) -> None:
    gray = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def test_one_bit_image(tmp_path: Path) -> None:
    bits = np.zeros((16, 16), bool)
    bits[:, 8:] = True
    Image.fromarray(bits).convert("1").save(tmp_path / "b.png")
    out = read_image(tmp_path / "b.png")
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 15].tolist() == [255, 255, 255]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(tmp_path: Path, mode: str) -> None:
    rgb = _rng_image(16, 16, seed=1)
    if mode == "LA":
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
    alpha = np.tile(np.linspace(0, 255, 16).astype(np.uint8), (16, 1))
    rgba = np.dstack([rgb, alpha])
    source = Image.fromarray(rgba)
    (source if mode == "RGBA" else source.convert("LA")).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    expected = _white_composite(rgb, alpha)
    assert np.abs(out.astype(np.float64) - expected).max() <= 1.0
    assert out[:, 0].tolist() == [[255, 255, 255]] * 16  # fully transparent column is white


def test_palette_with_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (253 * 3))
    pixels = np.zeros((16, 16), np.uint8)
    pixels[:, 8:] = 1
    pixels[8:, :] = 2
    image.putdata(pixels.ravel().tolist())
    image.save(tmp_path / "p.png", transparency=0)
    out = read_image(tmp_path / "p.png")
    assert out[0, 0].tolist() == [255, 255, 255]  # index 0 transparent -> white
    assert out[0, 15].tolist() == [255, 0, 0]
    assert out[15, 0].tolist() == [0, 0, 255]


def test_palette_without_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (16, 16), 1)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * (254 * 3))
    image.save(tmp_path / "p.gif")
    assert read_image(tmp_path / "p.gif")[3, 3].tolist() == [10, 20, 30]


def test_sixteen_bit_gray_keeps_high_byte(tmp_path: Path) -> None:
    levels = np.array([0, 257, 257 * 100, 65535, 256, 511], dtype=np.uint16)
    gray16 = np.tile(np.repeat(levels, 2), (12, 1))
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    with Image.open(tmp_path / "g16.png") as stored:
        assert stored.mode.startswith("I")  # really a 16-bit file, not reduced on write
    out = read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8
    assert out[0, ::2, 0].tolist() == [0, 1, 100, 255, 1, 1]
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_sixteen_bit_rgb(tmp_path: Path) -> None:
    rgb16 = np.zeros((10, 10, 3), np.uint16)
    rgb16[..., 0] = 65535
    rgb16[..., 1] = 257 * 7
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[..., ::-1])
    assert read_image(tmp_path / "c16.png")[0, 0].tolist() == [255, 7, 0]


def test_cmyk(tmp_path: Path) -> None:
    cmyk = np.zeros((12, 12, 4), np.uint8)
    cmyk[:, :6] = (0, 255, 255, 0)  # red
    cmyk[:, 6:] = (0, 0, 0, 255)  # black
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.tif")
    out = read_image(tmp_path / "c.tif")
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 11].tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    ("orientation", "turn"),
    [(1, lambda a: a), (3, lambda a: np.rot90(a, 2)), (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1))],
)
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, turn, suffix: str) -> None:
    stored = np.zeros((16, 32, 3), np.uint8)  # stored landscape, 4 flat quadrants
    stored[:8, :16] = (255, 0, 0)
    stored[:8, 16:] = (0, 255, 0)
    stored[8:, :16] = (0, 0, 255)
    stored[8:, 16:] = (255, 255, 255)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{suffix}"
    image.save(path, exif=exif, **({"quality": 100} if suffix == ".jpg" else {}))
    out = read_image(path)
    expected = turn(stored)
    assert out.shape == expected.shape
    # Compare quadrant centres: robust to JPEG ringing at the edges.
    h, w = expected.shape[:2]
    for y, x in [(h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4), (3 * h // 4, 3 * w // 4)]:
        assert np.abs(out[y, x].astype(int) - expected[y, x].astype(int)).max() <= 8


# --- bad input -------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jpg: file not found"):
        read_image(tmp_path / "nope.jpg")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.jpg: empty file"):
        read_image(tmp_path / "empty.jpg")


def test_non_image_file(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("image,label\nthis is a csv\n")
    with pytest.raises(DataError, match=r"notes\.jpg: not an image file"):
        read_image(tmp_path / "notes.jpg")


def test_corrupt_bytes_after_a_valid_signature(tmp_path: Path) -> None:
    write_image(tmp_path / "good.png", _rng_image(64, 64))
    data = bytearray((tmp_path / "good.png").read_bytes())
    data[60:200] = bytes(140)  # smash the compressed stream, keep the signature and IHDR
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"bad\.png: (corrupt|truncated)"):
        read_image(tmp_path / "bad.png")


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    write_image(tmp_path / f"full{suffix}", _rng_image(64, 64))
    data = (tmp_path / f"full{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"cut\{suffix}: truncated image file"):
        read_image(tmp_path / f"cut{suffix}")


def test_one_pixel_image_is_rejected(tmp_path: Path) -> None:
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(DataError, match=r"dot\.png: image is 1x1, smaller than min_side=8"):
        read_image(tmp_path / "dot.png")


def test_min_side_applies_to_the_short_side(tmp_path: Path) -> None:
    Image.new("RGB", (100, 7)).save(tmp_path / "strip.png")
    with pytest.raises(DataError, match="min_side"):
        read_image(tmp_path / "strip.png")
    assert read_image(tmp_path / "strip.png", min_side=7).shape == (7, 100, 3)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a token IDAT: nothing is ever decoded."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_huge_image_is_rejected_from_its_header(tmp_path: Path) -> None:
    (tmp_path / "huge.png").write_bytes(_png_header_only(10_000, 10_000))
    with pytest.raises(DataError, match=r"huge\.png: image is 10000x10000 = 100000000 pixels, more than max_pixels=50000000 \(and only JPEGs"):
        read_image(tmp_path / "huge.png")


def test_a_jpeg_over_max_pixels_is_decoded_at_a_reduced_size(tmp_path: Path) -> None:
    # A smooth picture so that the reduced decode can be compared with a plain downscale.
    y, x = np.mgrid[0:300, 0:400]
    picture = np.stack([x * 255 // 400, y * 255 // 300, (x + y) * 255 // 700], axis=2).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "big.jpg", quality=95)
    assert read_image(tmp_path / "big.jpg").shape == (300, 400, 3)
    half = read_image(tmp_path / "big.jpg", max_pixels=200 * 150)  # 1/2 fits exactly
    assert half.shape == (150, 200, 3)
    reference = np.asarray(Image.fromarray(picture).resize((200, 150), Image.BOX), dtype=np.float64)
    assert np.abs(half - reference).mean() < 2.0
    assert read_image(tmp_path / "big.jpg", max_pixels=200 * 150 - 1).shape == (75, 100, 3)  # 1/4
    with pytest.raises(DataError, match=r"big\.jpg: image is 400x300 .* more than max_pixels=100 \(even at 1/8 size\)"):
        read_image(tmp_path / "big.jpg", max_pixels=100)


def test_max_pixels_is_a_parameter(tmp_path: Path) -> None:
    write_image(tmp_path / "m.png", _rng_image(40, 50))
    with pytest.raises(DataError, match="more than max_pixels=1999"):
        read_image(tmp_path / "m.png", max_pixels=1999)
    assert read_image(tmp_path / "m.png", max_pixels=2000).shape == (40, 50, 3)


# --- write_image -----------------------------------------------------------------------


def test_write_image_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_image(tmp_path / "sub" / "x.png", _rng_image())
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.png"]


def test_write_image_rejects_a_wrong_array(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        write_image(tmp_path / "x.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        write_image(tmp_path / "x.png", np.zeros((8, 8, 3), np.float32))
    assert not (tmp_path / "x.png").exists()


def test_write_image_rejects_an_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"x\.xyz: unknown image suffix"):
        write_image(tmp_path / "x.xyz", _rng_image())
