"""Rank-list pictures: a query and its top-k in one row, right answers framed green, wrong red."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.core.io_utils import atomic_path

_QUERY = (40, 90, 220)
_RIGHT = (30, 170, 60)
_WRONG = (220, 40, 40)


def best_and_worst_queries(ap_per_query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``n`` best (highest AP first) and ``n`` worst (lowest AP first) queries.

    NaN entries (queries skipped by the protocol) are left out; ties go to the lower
    query index. With fewer than 2n scored queries the two lists overlap.
    """
    if n < 1:
        raise ValueError(f"best_and_worst_queries: n must be at least 1, got {n}")
    ap = np.asarray(ap_per_query, dtype=np.float64)
    scored = np.flatnonzero(~np.isnan(ap))
    best = scored[np.argsort(-ap[scored], kind="stable")[:n]]
    worst = scored[np.argsort(ap[scored], kind="stable")[:n]]
    return best, worst


def _framed(image: np.ndarray, colour: tuple[int, int, int], what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"rank list: {what} must be an RGB uint8 array (H, W, 3), got {image.dtype} {image.shape}")
    # The frame is drawn into the pixels so it hugs the picture whatever its aspect ratio.
    width = max(2, round(0.06 * max(image.shape[:2])))
    framed = np.empty((image.shape[0] + 2 * width, image.shape[1] + 2 * width, 3), dtype=np.uint8)
    framed[:] = colour
    framed[width:-width, width:-width] = image
    return framed


def render_ranklist(
    path_png: str | os.PathLike[str],
    query_image: np.ndarray,
    gallery_images: Sequence[np.ndarray],
    correct: Sequence[bool],
    title: str,
) -> None:
    """Write a PNG: the query (blue frame) then its ranked gallery images in order."""
    if len(gallery_images) == 0 or len(gallery_images) != len(correct):
        raise ValueError(
            f"rank list: need one 'correct' flag per gallery image, got {len(gallery_images)} images "
            f"and {len(correct)} flags"
        )
    tiles = [_framed(query_image, _QUERY, "the query image")]
    tiles += [
        _framed(image, _RIGHT if right else _WRONG, f"gallery image {rank}")
        for rank, (image, right) in enumerate(zip(gallery_images, correct, strict=True), start=1)
    ]
    captions = ["query"] + [f"#{rank} {'right' if right else 'wrong'}" for rank, right in enumerate(correct, start=1)]
    colours = [_QUERY] + [_RIGHT if right else _WRONG for right in correct]

    figure = Figure(figsize=(1.6 * len(tiles), 2.2), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.subplots(1, len(tiles), squeeze=False)[0]
    for axes, tile, caption, colour in zip(grid, tiles, captions, colours, strict=True):
        axes.imshow(tile)
        axes.set_axis_off()
        axes.set_title(caption, fontsize=8, color=np.array(colour) / 255)
    figure.suptitle(title, fontsize=9)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.8, wspace=0.08)
    with atomic_path(path_png) as tmp:
        figure.savefig(tmp, format="png")
