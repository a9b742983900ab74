"""CMC plot data and picture, rank-list pictures, and the choice of best and worst queries."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.plots import plot_cmc, write_cmc_plot_data
from pipeline.evaluate.ranklist import best_and_worst_queries, render_ranklist


def read_rgb(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} is not a readable image"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def test_cmc_plot_data_long_format(tmp_path) -> None:
    path = tmp_path / "cmc.csv"
    write_cmc_plot_data(path, {"effb0": np.array([0.5, 0.75, 1.0]), "fused": np.array([0.6, 0.9])})
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["rank", "method", "cmc"]
    assert frame["rank"].tolist() == [1, 2, 3, 1, 2]
    assert frame["method"].tolist() == ["effb0"] * 3 + ["fused"] * 2
    np.testing.assert_allclose(frame["cmc"], [0.5, 0.75, 1.0, 0.6, 0.9])


def test_plot_cmc_writes_png(tmp_path) -> None:
    path = tmp_path / "cmc.png"
    plot_cmc(path, {"a": np.linspace(0.3, 1, 10), "b": np.linspace(0.5, 1, 10)})
    assert read_rgb(path).shape == (400, 600, 3)  # 6 x 4 inches at 100 dpi
    with pytest.raises(ValueError, match="no curves"):
        plot_cmc(tmp_path / "empty.png", {})
    assert not (tmp_path / "empty.png").exists()


def test_render_ranklist_frames_right_green_and_wrong_red(tmp_path) -> None:
    grey = np.full((60, 40, 3), 128, dtype=np.uint8)
    path = tmp_path / "ranklist.png"
    render_ranklist(path, grey, [grey, grey, grey], [True, False, False], "query 7: AP 0.33")
    picture = read_rgb(path).reshape(-1, 3).astype(int)

    def share(colour: tuple[int, int, int]) -> float:
        return float(np.mean(np.abs(picture - colour).sum(axis=1) < 30))

    # One green frame, two red frames of the same size, one blue query frame.
    assert share((30, 170, 60)) > 0.005
    assert share((220, 40, 40)) == pytest.approx(2 * share((30, 170, 60)), rel=0.2)
    assert share((40, 90, 220)) == pytest.approx(share((30, 170, 60)), rel=0.2)


def test_render_ranklist_rejects_bad_input(tmp_path) -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="one 'correct' flag per gallery image"):
        render_ranklist(tmp_path / "r.png", image, [image, image], [True], "t")
    with pytest.raises(ValueError, match="RGB uint8"):
        render_ranklist(tmp_path / "r.png", image.astype(np.float32), [image], [True], "t")
    assert not (tmp_path / "r.png").exists()


def test_best_and_worst_queries() -> None:
    ap = np.array([0.5, np.nan, 1.0, 0.0, 1.0, 0.5])
    best, worst = best_and_worst_queries(ap, 3)
    assert best.tolist() == [2, 4, 0]  # ties go to the lower index; NaN (skipped) left out
    assert worst.tolist() == [3, 0, 5]
    best, worst = best_and_worst_queries(ap, 10)
    assert sorted(best.tolist()) == sorted(worst.tolist()) == [0, 2, 3, 4, 5]
