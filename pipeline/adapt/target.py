"""The unlabelled target images of domain adaptation, as one uint8 array (N, H, W, 3).

Three kinds of target, told apart by what the path is:

- a preprocess cache folder (it holds ``query.npy`` and ``gallery.npy``): its query then gallery
  images. Pointed at the chain's own cache this is the transductive use, the unlabelled test set
  itself. Only the two ``.npy`` files are opened, never the CSVs beside them: the labels and
  cameras of the test split cannot reach the adaptation, by construction.
- a CSV file: the images its ``image`` column names (paths relative to the CSV's folder); no
  other column is read.
- any other folder: every image file under it (sorted by path).

CSV and folder images are decoded and rescale-padded to the cache's size, as preprocess does.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.cache import default_workers, rescale_pad_files
from pipeline.data.importers import IMAGE_SUFFIXES
from pipeline.data.layout import check_image_path
from pipeline.core.errors import DataError
from pipeline.core.sections import ImageSize, height_width

CACHE_SPLITS = ("query", "gallery")  # a cache target's images, in this order


def is_cache(path: Path) -> bool:
    return path.is_dir() and all((path / f"{split}.npy").is_file() for split in CACHE_SPLITS)


def target_images(path: str | Path, size: ImageSize, fill: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """The target's images (see the module docstring); an empty target is an error naming it."""
    path = Path(path)
    if is_cache(path):
        images = cache_images(path)
    elif path.is_file():
        images = _decode([path.parent / name for name in csv_images(path)], size, fill)
    elif path.is_dir():
        images = _decode(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), size, fill)
    else:
        raise DataError(f"{path}: adapt.target not found (a preprocess cache, a CSV with an image column, or a folder of images)")
    if len(images) == 0:
        raise DataError(f"{path}: the adaptation target holds no images")
    return images


def cache_images(cache_dir: Path) -> np.ndarray:
    """The query then gallery images of a preprocess cache, from its .npy files alone."""
    parts = []
    for split in CACHE_SPLITS:
        npy = cache_dir / f"{split}.npy"
        try:
            array = np.load(npy, mmap_mode="r", allow_pickle=False)
        except ValueError as error:
            raise DataError(f"{npy}: not a valid .npy file ({error})") from error
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[3] != 3:
            raise DataError(f"{npy}: expected uint8 (N, H, W, 3), got {array.dtype} {array.shape}")
        parts.append(array)
    if parts[0].shape[1:] != parts[1].shape[1:]:
        raise DataError(f"{cache_dir}: query and gallery images differ in size ({parts[0].shape[1:3]} and {parts[1].shape[1:3]})")
    return np.concatenate(parts)


def csv_images(csv_path: Path) -> list[str]:
    """The ``image`` column of a CSV, checked like the dataset's paths; nothing else is read."""
    try:
        table = pd.read_csv(csv_path, usecols=["image"], dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{csv_path}: empty file (expected an image column)") from error
    except ValueError as error:  # pandas: usecols names a column the file does not have
        raise DataError(f"{csv_path}: no 'image' column ({error})") from error
    return [check_image_path(csv_path, line, image) for line, image in enumerate(table["image"], start=2)]


def _decode(paths: list[Path], size: ImageSize, fill: tuple[int, int, int]) -> np.ndarray:
    images = np.empty((len(paths), *height_width(size), 3), dtype=np.uint8)
    with ThreadPoolExecutor(default_workers()) as pool:
        rescale_pad_files(paths, images, size, fill, pool, "adapt: decode target")
    return images
