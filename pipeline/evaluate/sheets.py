"""Contact sheets: rows of image tiles with a caption per row, written as one PNG.

Used for the duplicate-identity groups (a row per label) and the background-suppression
masks (the queries before, and with the unpooled background dimmed, after).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.core.io_utils import atomic_path


def render_sheet(
    path_png: str | os.PathLike[str],
    rows: Sequence[Sequence[np.ndarray]],
    row_titles: Sequence[str],
    title: str,
) -> None:
    """Write a PNG grid: row i holds the RGB uint8 tiles ``rows[i]`` under the caption ``row_titles[i]``."""
    if not rows or len(rows) != len(row_titles) or any(len(row) == 0 for row in rows):
        raise ValueError(f"contact sheet: need one non-empty row per title, got {len(rows)} rows, {len(row_titles)} titles")
    columns = max(len(row) for row in rows)
    figure = Figure(figsize=(1.4 * columns, 1.6 * len(rows) + 0.4), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.subplots(len(rows), columns, squeeze=False)
    for axes_row, tiles, caption in zip(grid, rows, row_titles, strict=True):
        for column, axes in enumerate(axes_row):
            axes.set_axis_off()
            if column < len(tiles):
                axes.imshow(np.asarray(tiles[column]))
        axes_row[0].set_title(caption, fontsize=8, loc="left")
    figure.suptitle(title, fontsize=9)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.5 / (1.6 * len(rows) + 0.4), hspace=0.3, wspace=0.05)
    with atomic_path(path_png) as tmp:
        figure.savefig(tmp, format="png")


def dim_outside(image: np.ndarray, mask: np.ndarray, factor: float = 0.25) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with the pixels outside ``mask`` (h, w; any grid over the whole
    image, scaled up by nearest neighbour) darkened to ``factor`` of their value."""
    full = cv2.resize(mask.astype(np.uint8), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    scale = np.where(full[..., None] > 0, 1.0, factor)
    return (image * scale).astype(np.uint8)
