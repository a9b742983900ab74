"""Read any image file into one form (RGB uint8 HxWx3) and write one back atomically.

Decoding uses Pillow, which returns RGB, so no BGR<->RGB swap exists anywhere in the
project. Everything a real dataset throws at a pipeline is normalised here once:

- EXIF orientation is applied (``ImageOps.exif_transpose``), so phone photos stand upright;
- grayscale (``1``, ``L``) is replicated to three channels;
- alpha (``RGBA``, ``LA``, ``PA``, palette or grayscale with a ``transparency`` entry) is
  composited on white, the background product and catalogue photos assume;
- 16-bit samples (``I;16*``, ``I``) keep their high byte (``v >> 8``), the same reduction
  Pillow applies to 16-bit RGB PNGs, so gray and colour 16-bit files agree;
- CMYK, YCbCr, LAB and other modes go through Pillow's ``convert("RGB")``. ICC profiles are
  ignored (colour-managed conversion would add a dependency for a rarely visible change).

What a decode passes over in silence, :func:`decode_warnings` names: damaged JPEG scan data
(libjpeg recovers with a warning that Pillow drops, and the pixels below the damage are garbage)
and frames after the first of an animated or multi-page file, which :func:`read_image` skips.

Unusable files raise :class:`DataError` naming the file. ``max_pixels`` (default 50 MP, e.g.
a 7071x7071 image) bounds what is decoded, checked from the header before any pixel is:
every stage shrinks images far below it, so a larger JPEG is decoded at a reduced size
(libjpeg's DCT scaling by 1/2, 1/4 or 1/8, Pillow's ``draft``), which costs less than the
full decode; a 10000x10000 phone photo comes out 5000x5000. Other formats cannot be decoded
smaller, and a JPEG still over the limit at 1/8 is a decompression bomb: both are refused
(raise ``max_pixels`` explicitly for very large scans). Pillow itself refuses any header
above twice its own limit (about 179 MP) before this module sees it.
"""

from __future__ import annotations

import warnings
import math
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.core.errors import DataError
from pipeline.core.io_utils import atomic_path

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MIN_SIDE = 8
JPEG_QUALITY = 95

_WHITE = (255, 255, 255, 255)
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_JPEG_SCALES = (2, 4, 8)  # the reductions libjpeg decodes directly
_JPEG_SIGNATURE = b"\xff\xd8\xff"


def read_image(
    path: str | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> np.ndarray:
    """Decode ``path`` into a C-contiguous RGB uint8 array of shape (H, W, 3)."""
    name = str(path)
    try:
        # Our own max_pixels check below replaces Pillow's bomb warning; its hard error
        # (at twice its own limit) is still caught and reported as a DataError.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if min(width, height) < min_side:
                    raise DataError(
                        f"{name}: image is {width}x{height}, smaller than min_side={min_side} pixels"
                    )
                if width * height > max_pixels:
                    _reduce_or_refuse(image, name, max_pixels)
                image.load()
                image = ImageOps.exif_transpose(image)
                return _to_rgb_array(image)
    except DataError:
        raise
    except FileNotFoundError as error:
        raise DataError(f"{name}: file not found") from error
    except UnidentifiedImageError as error:
        empty = Path(path).is_file() and Path(path).stat().st_size == 0
        raise DataError(f"{name}: {'empty file' if empty else 'not an image file'}") from error
    except Image.DecompressionBombError as error:  # only reachable with max_pixels above Pillow's limit
        raise DataError(f"{name}: {error}") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # Pillow reports truncated/corrupt data as OSError, SyntaxError (bad PNG chunks) or
        # ValueError (bad EXIF) depending on the codec.
        raise DataError(f"{name}: {_describe(error)}") from error


def decode_warnings(path: str | Path) -> list[str]:
    """What decoding ``path`` (a file :func:`read_image` reads) passes over in silence; [] for a clean file.

    Damaged JPEG data: the file is decoded again by libjpeg-turbo through simplejpeg in strict
    mode (its first recoverable error raises) at 1/8 size, which still entropy-decodes every
    block, where damage shows, for a fraction of a full decode (0.2 ms for a 128 px photo).
    Frames: an animated GIF / WebP / PNG or a multi-page TIFF counts its frames. The first is
    read rather than the file refused: it is a whole picture (what a viewer shows first), and a
    dataset of product GIFs should not need converting to run; the count keeps it from being
    silent, and ``dataset.strict_decode`` turns it into an error.
    """
    found = []
    data = Path(path).read_bytes()
    if data.startswith(_JPEG_SIGNATURE):
        try:
            simplejpeg.decode_jpeg(data, colorspace="GRAY", min_factor=8, strict=True)
        except ValueError as error:  # Pillow decoded this file: whatever libjpeg reports is damage
            found.append(f"damaged JPEG data ({error})")
    with Image.open(path) as image:
        frames = getattr(image, "n_frames", 1)
    if frames > 1:
        found.append(f"{frames} frames, the first one read")
    return found


def _reduce_or_refuse(image: Image.Image, name: str, max_pixels: int) -> None:
    """Set a JPEG to decode at the least reduction that fits ``max_pixels``; refuse anything else."""
    width, height = image.size
    if image.format == "JPEG":
        for scale in _JPEG_SCALES:
            if math.ceil(width / scale) * math.ceil(height / scale) <= max_pixels:
                image.draft(image.mode, (math.ceil(width / scale), math.ceil(height / scale)))
                return
    reducible = "even at 1/8 size" if image.format == "JPEG" else "and only JPEGs can be decoded smaller"
    raise DataError(
        f"{name}: image is {width}x{height} = {width * height} pixels, more than max_pixels={max_pixels} "
        f"({reducible}): a decompression bomb, or raise max_pixels"
    )


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if "truncated" in text.lower():
        return f"truncated image file ({text})"
    return f"corrupt image file ({text})"


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image)
        # Mode "I" is 32-bit signed; in practice it carries 16-bit PNG/TIFF samples.
        gray = (np.clip(values, 0, 65535).astype(np.uint16) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def write_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 (H, W, 3) array; the format follows the suffix (.png lossless, .jpg q95)."""
    path = Path(path)
    array = np.asarray(rgb)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"{path}: write_image expects an RGB uint8 (H, W, 3) array, "
            f"got dtype {array.dtype} shape {array.shape}"
        )
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise DataError(f"{path}: unknown image suffix '{path.suffix}' (use .png or .jpg)")
    options = {"quality": JPEG_QUALITY} if image_format == "JPEG" else {}
    with atomic_path(path) as tmp:
        # The temporary name ends in .tmp, so the format is passed explicitly.
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format=image_format, **options)
