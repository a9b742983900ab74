"""Duplicate identities: clustering classifier rows finds planted duplicates and nothing else;
the merge file is read strictly and applied before the folds are drawn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.folds import make_folds
from pipeline.data.label_merge import apply_label_merge, read_label_merge
from pipeline.core.errors import DataError
from pipeline.evaluate.duplicates import duplicate_groups, merge_table

REPO = Path(__file__).resolve().parents[1]


def _planted_rows(seed: int = 0) -> tuple[np.ndarray, list[str], list[set[str]]]:
    """40 random classifier rows in 64-d (pairwise cosine ~ +-0.15) with two planted groups:
    c05 ~ c17, and c08 ~ c09 ~ c30 (copies of one row plus 30 % noise)."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(40, 64))
    for group in ([5, 17], [8, 9, 30]):
        for member in group[1:]:
            rows[member] = rows[group[0]] + 0.3 * rng.normal(size=64)
    labels = [f"c{i:02d}" for i in range(40)]
    return rows, labels, [{"c05", "c17"}, {"c08", "c09", "c30"}]


@pytest.mark.parametrize("linkage", ["single", "average", "complete"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_groups_are_found_and_nothing_else(linkage, seed):
    rows, labels, planted = _planted_rows(seed)
    groups = duplicate_groups(rows, labels, threshold=0.6, linkage=linkage)
    found = [set(members["label"]) for _, members in groups.groupby("group")]
    assert sorted(map(sorted, found)) == sorted(map(sorted, planted))


def test_similarities_are_the_cosines_and_groups_are_ordered():
    rows, labels, _ = _planted_rows()
    groups = duplicate_groups(rows * np.arange(1, 41)[:, None], labels, threshold=0.6)  # row scale is irrelevant
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    pair = groups[groups["label"].isin(["c05", "c17"])]
    assert pair["similarity"].to_numpy() == pytest.approx([unit[5] @ unit[17]] * 2)
    triple = groups[groups["label"] == "c09"]
    assert float(triple["similarity"].iloc[0]) == pytest.approx((unit[9] @ unit[8] + unit[9] @ unit[30]) / 2)
    scores = groups.groupby("group")["group_similarity"].first().to_numpy()
    assert (np.diff(scores) <= 0).all()


def test_threshold_decides():
    rows, labels, _ = _planted_rows()
    assert duplicate_groups(rows, labels, threshold=0.99).empty
    everything = duplicate_groups(rows, labels, threshold=-0.9, linkage="single")
    assert len(everything) == 40 and everything["group"].nunique() == 1


def test_bad_rows_are_refused():
    with pytest.raises(DataError, match="do not match"):
        duplicate_groups(np.ones((3, 4)), ["a", "b"], 0.5)
    with pytest.raises(DataError, match="none of them zero"):
        duplicate_groups(np.array([[1.0, 0.0], [0.0, 0.0]]), ["a", "b"], 0.5)


def test_merge_table_keeps_the_largest_label():
    groups = pd.DataFrame({"group": [0, 0, 0, 1, 1], "label": ["a", "b", "c", "d", "e"]})
    merge = merge_table(groups, {"a": 3, "b": 7, "c": 7, "d": 2, "e": 2})
    assert merge.to_dict("records") == [
        {"label": "c", "merged_into": "b"}, {"label": "a", "merged_into": "b"}, {"label": "e", "merged_into": "d"},
    ]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "merge.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_merge_file_is_applied_before_the_folds(tmp_path):
    merge = read_label_merge(_write(tmp_path, "label,merged_into\n007,001\n003,001\n"))
    labels = [f"{i:03d}" for i in range(12) for _ in range(4)]
    train = pd.DataFrame({"image": [f"{n}.png" for n in range(len(labels))], "label": labels})
    train["label"] = apply_label_merge(train["label"], merge, "merge.csv")
    assert sorted(set(train["label"])) == sorted({f"{i:03d}" for i in range(12)} - {"003", "007"})
    folds = make_folds(train, 3, 0, 0.25)
    assert folds.loc[folds["label"] == "001", "fold"].nunique() == 1  # one identity, one fold
    assert (folds["label"] == "001").sum() == 12
    assert read_label_merge(_write(tmp_path, "label,merged_into\n")) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label,into\na,b\n", "missing column 'merged_into'"),
        ("label,merged_into\na,b\na,c\n", "'a' is listed more than once"),
        ("label,merged_into\na,a\n", "'a' is merged into itself"),
        ("label,merged_into\na,b\nb,c\n", "which is itself merged"),
        ("", "empty file"),
    ],
)
def test_bad_merge_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(DataError, match=message) as error:
        read_label_merge(_write(tmp_path, text))
    assert "merge.csv" in str(error.value)


def test_merge_of_an_unknown_label_is_refused():
    with pytest.raises(DataError, match="configs/m.csv: label 'zz' is not in the training labels"):
        apply_label_merge(pd.Series(["a", "b"]), {"zz": "a"}, "configs/m.csv")


def test_stage_maps_rows_to_the_fold_labels_and_writes_the_report(tmp_path):
    """The stage on a tiny cache, folds and a checkpoint whose classifier rows have a planted
    pair: the rows are the fold's training labels in sorted order, so the pair comes back by name."""
    import torch

    from pipeline.data.layout import write_split
    from pipeline.core.io_utils import write_csv
    from stages.duplicates import main

    names = [f"p{i:02d}" for i in range(12)]
    labels = [name for name in names for _ in range(3)]
    table = pd.DataFrame({"image": [f"{n}.png" for n in range(len(labels))], "label": labels})
    cache = tmp_path / "cache"
    cache.mkdir()
    np.save(cache / "train.npy", np.random.default_rng(0).integers(0, 256, (len(labels), 8, 8, 3), dtype=np.uint8))
    write_split(cache, "train", table)
    folds = make_folds(table, 3, 0, 0.3)
    write_csv(tmp_path / "folds.csv", folds)
    trained = sorted(set(folds.loc[folds["fold"] != 0, "label"]))  # fold 0 held out
    rows, _, _ = _planted_rows()
    rows = rows[: len(trained)].copy()
    rows[len(trained) - 1] = rows[0] + 0.1  # the first and the last trained label: one product
    checkpoint = tmp_path / "models/m/fold0/checkpoints/best.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"model": {"head.weight": torch.from_numpy(rows).float()}}, checkpoint)
    params = tmp_path / "params.yaml"
    params.write_text(
        f"preprocess: {{out: {cache}}}\nfolds: {{out: {tmp_path / 'folds.csv'}}}\n"
        f"train: {{models: [m], folds: [0], out: {tmp_path / 'models'}}}\n"
        f"duplicates: {{out: {tmp_path / 'dup'}, model: m, fold: 0, threshold: 0.8, images_per_label: 2}}\n",
        encoding="utf-8",
    )
    main(["--params", str(params)])
    groups = pd.read_csv(tmp_path / "dup/groups.csv", dtype={"label": str})
    assert sorted(groups["label"]) == sorted([trained[0], trained[-1]]) and (groups["images"] == 3).all()
    merge = pd.read_csv(tmp_path / "dup/merge.csv", dtype=str)
    assert merge.to_dict("records") == [{"label": trained[-1], "merged_into": trained[0]}]  # tie: smaller name kept
    summary = json.loads((tmp_path / "dup/summary.json").read_text())
    assert summary["groups"] == 1 and summary["train_labels"] == len(trained) and summary["images_in_groups"] == 6
    assert [p.name for p in (tmp_path / "dup/sheets").iterdir()] == ["group_000.png"]
    read_label_merge(tmp_path / "dup/merge.csv")  # the merge file is valid input for folds.label_merge

    torch.save({"model": {"head.weight": torch.from_numpy(rows[:-1]).float()}}, checkpoint)
    with pytest.raises(DataError, match=f"{len(trained) - 1} classifier rows, but fold 0 trains {len(trained)} labels"):
        main(["--params", str(params)])


def test_unset_model_and_fold_follow_the_chain_and_a_stray_one_names_its_key(tmp_path):
    """A chain whose train.models shares no name with the defaults: the stage takes its first
    model and fold; a model or fold the chain does not train is a params error, not a missing file."""
    from pipeline.core.errors import ConfigError
    from pipeline.core.params import StageParams
    from pipeline.core.sections import DuplicatesConfig

    params = tmp_path / "params.yaml"
    params.write_text("train: {models: [person_a, person_b], folds: [2, 0]}\nduplicates: {}\n", encoding="utf-8")
    stage = StageParams(params)
    assert stage.duplicates.target(stage.train) == ("person_a", 2)
    params.write_text("train: {models: [person_a, person_b], folds: [2, 0]}\nduplicates: {model: person_b, fold: 0}\n")
    stage = StageParams(params)
    assert stage.duplicates.target(stage.train) == ("person_b", 0)
    with pytest.raises(ConfigError, match=r"^params\.yaml: duplicates\.model is 'lite0', which train\.models \(person_a, person_b\)"):
        DuplicatesConfig(model="lite0").target(stage.train)
    with pytest.raises(ConfigError, match=r"^p\.yaml: duplicates\.fold is 1, which train\.folds \[2, 0\] does not list"):
        DuplicatesConfig(fold=1).target(stage.train, "p.yaml")
