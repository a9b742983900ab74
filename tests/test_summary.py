"""The end-of-run summary: headline scores, fusion weights and fold scores from the chain's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.core.errors import DataError
from pipeline.evaluate.summary import main, read_fold_metrics, score_table


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_score_table_keeps_the_headline_columns_in_order():
    metrics = {"k": 5, "table": {
        "m1": {"top1": 0.5, "map@5": 0.25, "score": 0.375, "mAP": 0.2, "cmc@5": 0.75, "mINP": 0.1, "cmc@1": 0.5,
               "cmc@10": 0.875, "cmc@20": 1.0},
        "submission": {"top1": 0.5, "map@5": 0.25, "score": 0.375},
    }}
    lines = score_table(metrics).splitlines()
    assert lines[0] == "| method | score | top-1 | mAP@5 | CMC@5 | CMC@10 | CMC@20 | mAP | mINP |"
    assert lines[2] == "| m1 | 0.375 | 0.500 | 0.250 | 0.750 | 0.875 | 1.000 | 0.200 | 0.100 |"
    assert lines[3] == "| submission | 0.375 | 0.500 | 0.250 | – | – | – | – | – |"
    assert "nothing was scored" in score_table({"table": {}})


def test_fold_metrics_read_untrained_and_best_from_dvclive(tmp_path):
    live = tmp_path / "lite0" / "fold1" / "live"
    write(live / "metrics.json", json.dumps({"best": {"score": 0.9, "epoch": 4.0}, "step": 6}))
    write(live / "plots" / "metrics" / "val" / "score.tsv", "step\tscore\n0\t0.61\n1\t0.8\n")
    found = read_fold_metrics(tmp_path, ["lite0", "absent"], [0, 1])
    assert found == {"lite0 fold 1": {"untrained": 0.61, "best/score": 0.9, "best/epoch": 4}}


def test_main_prints_all_three_tables(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "params.yaml", "evaluate: {}\nfuse: {}\ntrain: {models: [a, b], folds: [0]}\n")
    write(tmp_path / "outputs" / "metrics.json", json.dumps({"k": 10, "table": {"fused": {"score": 0.5, "top1": 0.6, "map@10": 0.4}}}))
    write(tmp_path / "outputs" / "fuse.json", json.dumps({"weights": {"a": 0.7, "b": 0.3}, "tuned": True}))
    main([])
    out = capsys.readouterr().out
    assert "| fused | 0.500 | 0.600 | 0.400 | – | – |" in out
    assert "Fusion weights: a 0.70, b 0.30 (tuned on the out-of-fold lists)" in out
    (tmp_path / "outputs" / "metrics.json").unlink()
    with pytest.raises(DataError, match=r"metrics\.json: file not found \(run `dvc repro` first\)"):
        main([])
