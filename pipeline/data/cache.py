"""The preprocess cache: every split decoded and rescale-padded once, read back as a memmap.

    <out>/{split}.npy   uint8 (N, H, W, 3), RGB, row i = row i of {split}.csv
    <out>/{split}.csv   the split's table from the dataset, same row order

Training and extraction open the ``.npy`` with ``mmap_mode="r"``: a batch read touches only
its rows, so no worker decodes a JPEG again and the cache may be larger than memory. The
whole folder is built under a temporary name and swapped in at the end, so a killed run
never leaves a cache that looks complete.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.data.images import read_image
from pipeline.data.layout import SPLITS, load_dataset, read_split, write_split
from pipeline.data.rescale_pad import rescale_pad
from pipeline.core.errors import DataError
from pipeline.core.io_utils import atomic_dir
from pipeline.core.sections import ImageSize, height_width


def default_workers() -> int:
    # Pillow's decoders and cv2.resize release the GIL, so threads scale without the cost of
    # shipping arrays between processes.
    return min(8, os.cpu_count() or 1)


def rescale_pad_files(
    paths: Sequence[Path], out: np.ndarray, size: ImageSize, fill: tuple[int, int, int], pool: Executor, desc: str
) -> None:
    """Decode and rescale-pad ``paths`` into the rows of ``out``, in order, on ``pool``'s threads
    (the decoders release the GIL)."""
    decoded = pool.map(lambda path: rescale_pad(read_image(path), size, fill), paths)
    for row, array in enumerate(tqdm(decoded, total=len(paths), desc=desc, unit="img")):
        out[row] = array


def build_cache(
    dataset_root: Path,
    out_dir: Path,
    size: ImageSize,
    fill: tuple[int, int, int] = (0, 0, 0),
    *,
    workers: int | None = None,
) -> None:
    """Decode and rescale-pad every image of the dataset at ``dataset_root`` into ``out_dir``."""
    dataset = load_dataset(dataset_root)
    root = Path(dataset_root)
    fill = tuple(int(v) for v in fill)

    pool = ThreadPoolExecutor(workers or default_workers())
    try:
        with atomic_dir(out_dir) as tmp:
            for split in SPLITS:
                table = dataset.split(split)
                # open_memmap writes straight to disk: the cache never has to fit in memory.
                images = np.lib.format.open_memmap(
                    tmp / f"{split}.npy", mode="w+", dtype=np.uint8, shape=(len(table), *height_width(size), 3)
                )
                rescale_pad_files([root / image for image in table["image"]], images, size, fill, pool, f"preprocess {split}")
                images.flush()
                del images
                write_split(tmp, split, table)
    finally:
        # On a bad image, drop the queued decodes instead of finishing them first.
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class CachedSplit:
    """One cached split: ``images`` is a read-only memmap aligned row by row with ``table``."""

    images: np.ndarray
    table: pd.DataFrame


def open_split(cache_dir: Path, split: str) -> CachedSplit:
    """Open ``{split}.npy`` (memory-mapped, read-only) and ``{split}.csv`` of a built cache."""
    cache_dir = Path(cache_dir)
    npy = cache_dir / f"{split}.npy"
    try:
        images = np.load(npy, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError as error:
        raise DataError(f"{npy}: file not found (run the preprocess stage)") from error
    except ValueError as error:
        raise DataError(f"{npy}: not a valid .npy file ({error})") from error
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise DataError(f"{npy}: expected uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    table = read_split(cache_dir, split, check_files=False)  # paths are relative to the dataset, not the cache
    if len(table) != len(images):
        raise DataError(f"{cache_dir / f'{split}.csv'}: {len(table)} rows but {npy.name} holds {len(images)} images")
    return CachedSplit(images=images, table=table)
