"""CMC curves: a long-format CSV for ``dvc plots`` and a PNG drawn with matplotlib.

The CSV has columns ``rank,method,cmc``. DVC's built-in templates colour lines by
revision only, so dvc.yaml should point the plot at ``pipeline/evaluate/cmc_template.json``
(colour by method), e.g.::

    plots:
      - outputs/evaluate/cmc.csv:
          x: rank
          y: cmc
          template: pipeline/evaluate/cmc_template.json
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.core.io_utils import atomic_path, write_csv


def _curves(cmc_by_name: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not cmc_by_name:
        raise ValueError("CMC plot: no curves given")
    curves = {str(name): np.asarray(cmc, dtype=np.float64) for name, cmc in cmc_by_name.items()}
    for name, cmc in curves.items():
        if cmc.ndim != 1 or cmc.size == 0:
            raise ValueError(f"CMC plot: curve {name!r} must be a non-empty 1-D array, got shape {cmc.shape}")
    return curves


def write_cmc_plot_data(path_csv: str | os.PathLike[str], cmc_by_name: Mapping[str, np.ndarray]) -> None:
    """Write ``rank,method,cmc`` rows (rank from 1) for every curve, atomically."""
    frame = pd.concat(
        [
            pd.DataFrame({"rank": np.arange(1, cmc.size + 1), "method": name, "cmc": cmc})
            for name, cmc in _curves(cmc_by_name).items()
        ],
        ignore_index=True,
    )
    write_csv(path_csv, frame)


def plot_cmc(path_png: str | os.PathLike[str], cmc_by_name: Mapping[str, np.ndarray], title: str = "CMC") -> None:
    """Draw every CMC curve (rank on x, matching rate on y) into one PNG, atomically."""
    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)  # attaches the non-interactive canvas: no display, no pyplot state
    axes = figure.add_subplot()
    for name, cmc in _curves(cmc_by_name).items():
        ranks = np.arange(1, cmc.size + 1)
        axes.plot(ranks, cmc, marker="o" if cmc.size <= 20 else None, markersize=3, label=name)
    axes.set_xlabel("rank")
    axes.set_ylabel("matching rate")
    axes.set_ylim(0.0, 1.02)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    with atomic_path(path_png) as tmp:
        figure.savefig(tmp, format="png")
