"""Competition scores (top-1, mAP@k, score) and the metrics table against known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.evaluate.metrics import competition_per_query, competition_scores, metrics_table, write_metrics


def reference_scores(ranked: np.ndarray, query_labels: list[str], gallery_labels: list[str], k: int) -> dict:
    """Plain loops over the competition definition of AP@k."""
    aps, top1 = [], []
    for q, row in enumerate(ranked):
        n_relevant = sum(g == query_labels[q] for g in gallery_labels)
        hits, total = 0, 0.0
        for i, g in enumerate(row[:k], start=1):
            if gallery_labels[g] == query_labels[q]:
                hits += 1
                total += hits / i
        aps.append(total / min(k, n_relevant) if n_relevant else 0.0)
        top1.append(float(gallery_labels[row[0]] == query_labels[q]))
    return {"top1": np.mean(top1), "map": np.mean(aps), "ap": np.array(aps)}


def test_hand_computed_case() -> None:
    gallery = ["a", "b", "a", "c", "a"]
    queries = ["a", "c", "z"]
    ranked = np.array([[1, 0, 2, 3], [3, 0, 1, 2], [0, 1, 2, 3]])
    # q0 "a" (3 relevant): b, a, a -> (1/2 + 2/3) / min(3, 3) = 7/18; top-1 wrong.
    # q1 "c" (1 relevant): c first -> (1/1) / min(3, 1) = 1; top-1 right.
    # q2 "z" (none in the gallery): 0 and counted.
    scores = competition_scores(ranked, queries, gallery, k=3)
    assert scores["top1"] == pytest.approx(1 / 3)
    assert scores["map@3"] == pytest.approx((7 / 18 + 1 + 0) / 3)
    assert scores["score"] == pytest.approx(0.5 / 3 + 0.5 * (7 / 18 + 1) / 3)
    assert scores["queries_without_match"] == 1
    per_query = competition_per_query(ranked, queries, gallery, k=3)
    np.testing.assert_allclose(per_query.ap, [7 / 18, 1.0, 0.0])
    np.testing.assert_array_equal(per_query.has_match, [True, True, False])


def test_labels_compare_by_string_form() -> None:
    # pandas may read numeric labels as integers on one side and strings on the other.
    scores = competition_scores(np.array([[1, 0]]), [7], ["3", "7"], k=2)
    assert scores["top1"] == 1.0 and scores["map@2"] == 1.0


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_query, n_gallery, k = 30, 25, int(rng.integers(1, 12))
    gallery = [f"id{v}" for v in rng.integers(0, 8, n_gallery)]
    queries = [f"id{v}" for v in rng.integers(0, 10, n_query)]  # ids 8, 9: no match
    ranked = np.stack([rng.permutation(n_gallery) for _ in range(n_query)])
    expected = reference_scores(ranked, queries, gallery, k)
    scores = competition_scores(ranked, queries, gallery, k=k)
    assert scores["top1"] == pytest.approx(expected["top1"])
    assert scores[f"map@{k}"] == pytest.approx(expected["map"])
    np.testing.assert_allclose(competition_per_query(ranked, queries, gallery, k).ap, expected["ap"])


@pytest.mark.parametrize(
    ("ranked", "k", "message"),
    [
        (np.array([[0, 1, 2]]), 4, "larger than the gallery"),
        (np.array([[0, 1]]), 3, "fewer than the cut-off"),
        (np.array([[0, 3, 1]]), 3, "outside"),
        (np.array([[0, 1, 0]]), 3, "twice"),
        (np.array([[0.0, 1.0, 2.0]]), 3, "integer"),
        (np.array([[0, 1, 2], [0, 1, 2]]), 3, "rows"),
    ],
)
def test_bad_rankings_are_data_errors(ranked: np.ndarray, k: int, message: str) -> None:
    with pytest.raises(DataError, match=message):
        competition_scores(ranked, ["a"], ["a", "b", "c"], k=k)


def test_empty_sets_and_missing_labels_are_data_errors() -> None:
    with pytest.raises(DataError, match="query set is empty"):
        competition_scores(np.zeros((0, 1), dtype=int), [], ["a"], k=1)
    with pytest.raises(DataError, match="gallery set is empty"):
        competition_scores(np.zeros((1, 1), dtype=int), ["a"], [], k=1)
    with pytest.raises(DataError, match="row 1"):
        competition_scores(np.array([[0]]), ["a"], ["a", None], k=1)


def test_metrics_table_markdown() -> None:
    rows = {"effb0": {"top1": 0.5, "score": 0.25}, "fused": {"top1": 0.75, "n": np.int64(3)}}
    assert metrics_table(rows) == (
        "| method | top1 | score | n |\n"
        "|---|---:|---:|---:|\n"
        "| effb0 | 0.5000 | 0.2500 | – |\n"
        "| fused | 0.7500 | – | 3 |\n"
    )


def test_write_metrics_json_layout(tmp_path) -> None:
    path = tmp_path / "metrics.json"
    write_metrics(path, {"fused": {"top1": np.float32(0.5), "mAP": float("nan"), "skipped": 2}}, k=10)
    assert json.loads(path.read_text()) == {"table": {"fused": {"top1": 0.5, "mAP": None, "skipped": 2}}, "k": 10}
    with pytest.raises(ValueError, match=r"\[fused\]\[cmc\]"):
        write_metrics(tmp_path / "bad.json", {"fused": {"cmc": np.ones(3)}})
    assert not (tmp_path / "bad.json").exists()


def test_write_metrics_accepts_an_unscored_run(tmp_path):
    import json

    from pipeline.evaluate.metrics import write_metrics

    write_metrics(tmp_path / "m.json", {}, labels=False)
    assert json.loads((tmp_path / "m.json").read_text()) == {"table": {}, "labels": False}
