"""Rescale-pad geometry on hand-computed cases, and the pixels it produces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.data.rescale_pad import rescale_pad, rescale_pad_box


@pytest.mark.parametrize(
    ("h", "w", "size", "expected"),
    [
        (100, 50, 128, (128, 64, 0, 32)),  # portrait: 50 * 1.28 = 64, pad 64 split 32/32
        (50, 100, 128, (64, 128, 32, 0)),  # landscape mirror
        (10, 10, 5, (5, 5, 0, 0)),  # square: no padding
        (3, 2, 8, (8, 5, 0, 1)),  # 2 * 8/3 = 5.33 -> 5; pad 3 -> left 1, right 2 (extra right)
        (7, 10, 4, (3, 4, 0, 0)),  # 7 * 0.4 = 2.8 -> 3; pad 1 -> top 0, bottom 1
        (2, 4, 3, (2, 3, 0, 0)),  # 2 * 3/4 = 1.5 -> 2 (half rounds up); pad 1 -> bottom
        (1000, 1, 128, (128, 1, 0, 63)),  # 0.128 -> at least 1 pixel; pad 127 -> 63 / 64
        (64, 256, 128, (32, 128, 48, 0)),  # downscale by 2
        (20, 30, 60, (40, 60, 10, 0)),  # upscale by 2
    ],
)
def test_rescale_pad_box(h: int, w: int, size: int, expected: tuple[int, int, int, int]) -> None:
    assert rescale_pad_box(h, w, size) == expected


def test_rescale_pad_box_rejects_empty_sides() -> None:
    with pytest.raises(ValueError, match="positive"):
        rescale_pad_box(0, 5, 8)


def test_flat_portrait_image_is_centred_with_fill() -> None:
    image = np.full((20, 10, 3), (10, 20, 30), np.uint8)
    out = rescale_pad(image, 8, fill=(1, 2, 3))
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert (out[:, :2] == (1, 2, 3)).all()
    assert (out[:, 2:6] == (10, 20, 30)).all()
    assert (out[:, 6:] == (1, 2, 3)).all()


def test_odd_padding_puts_the_extra_pixel_bottom() -> None:
    image = np.full((7, 10, 3), 200, np.uint8)
    out = rescale_pad(image, 4)  # content 3x4 at top 0, one fill row at the bottom
    assert (out[:3] == 200).all()
    assert (out[3] == 0).all()


def test_content_matches_a_direct_resize() -> None:
    image = np.random.default_rng(0).integers(0, 256, (60, 40, 3), dtype=np.uint8)
    out = rescale_pad(image, 30, interpolation=cv2.INTER_LINEAR)
    reference = cv2.resize(image, (20, 30), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out[:, 5:25], reference)
    assert not out[:, :5].any() and not out[:, 25:].any()


def test_identity_when_already_square_at_size() -> None:
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rescale_pad(image, 16), image)


def test_rejects_non_rgb_arrays() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        rescale_pad(np.zeros((8, 8), np.uint8), 4)
    with pytest.raises(ValueError, match="RGB uint8"):
        rescale_pad(np.zeros((8, 8, 3), np.float32), 4)


@pytest.mark.parametrize(
    ("h", "w", "size", "expected"),
    [
        (300, 100, (256, 128), (256, 85, 0, 21)),  # tall person: height fills, 100 * 256/300 = 85.3 -> 85
        (200, 100, (256, 128), (256, 128, 0, 0)),  # exactly 2:1: no padding
        (100, 100, (256, 128), (128, 128, 64, 0)),  # square photo in a tall box: width fills
        (50, 200, (256, 128), (32, 128, 112, 0)),  # landscape: 50 * 128/200 = 32
        (3, 2, (8, 8), (8, 5, 0, 1)),  # a [h, w] square box equals the int side
    ],
)
def test_rescale_pad_box_height_width(h, w, size, expected) -> None:
    assert rescale_pad_box(h, w, size) == expected


def test_rescale_pad_into_a_tall_box() -> None:
    image = np.full((30, 30, 3), 200, np.uint8)
    out = rescale_pad(image, (16, 8), fill=(0, 0, 0))
    assert out.shape == (16, 8, 3)
    assert (out[4:12] == 200).all() and (out[:4] == 0).all() and (out[12:] == 0).all()
