"""Identity-grouped folds: disjoint identities, matching query/gallery, singletons train, seeded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.folds import fold_indices, make_folds, queries_per_identity, read_folds
from pipeline.data.layout import write_split
from pipeline.core.errors import ConfigError, DataError
from pipeline.core.params import load_section
from pipeline.core.sections import FoldsConfig

REPO = Path(__file__).resolve().parents[1]


def _train(seed: int = 0, identities: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 9, size=identities)  # includes singletons
    labels = [f"{i:03d}" for i, n in enumerate(counts) for _ in range(n)]
    order = rng.permutation(len(labels))  # identities interleaved, as in real tables
    labels = [labels[i] for i in order]
    return pd.DataFrame({"image": [f"img/{i}.jpg" for i in range(len(labels))], "label": labels})


@pytest.mark.parametrize(
    ("n", "fraction", "expected"),
    [(2, 0.2, 1), (10, 0.2, 2), (12, 0.2, 2), (13, 0.2, 3), (5, 0.5, 3), (2, 0.9, 1), (4, 0.9, 3), (40, 0.01, 1)],
)
def test_queries_per_identity(n: int, fraction: float, expected: int) -> None:
    assert queries_per_identity(n, fraction) == expected


def test_rows_and_order_are_kept() -> None:
    train = _train()
    folds = make_folds(train, 5, 0, 0.2)
    pd.testing.assert_frame_equal(folds[["image", "label"]], train)
    assert folds["fold"].dtype == np.int64
    assert set(folds["fold"]) <= set(range(-1, 5)) and set(folds["role"]) <= {"train", "query", "gallery"}


def test_each_identity_in_one_fold_and_singletons_always_train() -> None:
    folds = make_folds(_train(), 4, 3, 0.3)
    per_identity = folds.groupby("label")["fold"].nunique()
    assert (per_identity == 1).all()
    sizes = folds.groupby("label").size()
    singletons = sizes[sizes == 1].index
    assert len(singletons) > 0
    rows = folds[folds["label"].isin(singletons)]
    assert (rows["fold"] == -1).all() and (rows["role"] == "train").all()
    assert (folds.loc[folds["fold"] >= 0, "role"] != "train").all()


def test_query_counts_per_identity() -> None:
    folds = make_folds(_train(), 5, 0, 0.35)
    for _, group in folds[folds["fold"] >= 0].groupby("label"):
        n = len(group)
        assert (group["role"] == "query").sum() == queries_per_identity(n, 0.35)
        assert (group["role"] == "gallery").sum() >= 1


def test_fold_indices_partition_rows_and_match_identities() -> None:
    folds = make_folds(_train(), 5, 0, 0.2)
    seen_validation: set[str] = set()
    for fold in range(5):
        split = fold_indices(folds, fold)
        everything = np.concatenate([split.train, split.val_query, split.val_gallery])
        assert sorted(everything.tolist()) == list(range(len(folds)))  # a partition of the rows
        query_ids = set(folds["label"].iloc[split.val_query])
        gallery_ids = set(folds["label"].iloc[split.val_gallery])
        train_ids = set(folds["label"].iloc[split.train])
        assert query_ids == gallery_ids and query_ids
        assert not query_ids & train_ids
        assert not query_ids & seen_validation  # no identity validates in two folds
        seen_validation |= query_ids
    eligible = {label for label, n in folds["label"].value_counts().items() if n >= 2}
    assert seen_validation == eligible


def test_fold_sizes_are_balanced_in_images() -> None:
    folds = make_folds(_train(identities=200), 5, 0, 0.2)
    sizes = folds[folds["fold"] >= 0].groupby("fold").size()
    assert len(sizes) == 5
    assert sizes.max() - sizes.min() <= folds["label"].value_counts().max()


def test_hand_checked_assignment() -> None:
    # Counts 4, 3, 3, 2 into 2 folds, largest first to the emptiest: {4, 2} and {3, 3} -> 6 and 6.
    labels = ["a"] * 4 + ["b"] * 3 + ["c"] * 3 + ["d"] * 2 + ["e"]
    folds = make_folds(pd.DataFrame({"image": [f"{i}.jpg" for i in range(13)], "label": labels}), 2, 0, 0.2)
    fold_of = folds.groupby("label")["fold"].first()
    assert fold_of["e"] == -1
    assert fold_of["a"] == fold_of["d"] != fold_of["b"] == fold_of["c"]


def test_deterministic_and_seeded() -> None:
    train = _train()
    first = make_folds(train, 5, 7, 0.2)
    pd.testing.assert_frame_equal(first, make_folds(train, 5, 7, 0.2))
    other = make_folds(train, 5, 8, 0.2)
    assert not (first["fold"].equals(other["fold"]) and first["role"].equals(other["role"]))


def test_identity_folds_do_not_depend_on_row_order() -> None:
    train = _train()
    shuffled = train.sample(frac=1.0, random_state=1).reset_index(drop=True)
    a = make_folds(train, 5, 0, 0.2).groupby("label")["fold"].first()
    b = make_folds(shuffled, 5, 0, 0.2).groupby("label")["fold"].first()
    pd.testing.assert_series_equal(a, b)


def test_too_few_identities() -> None:
    train = pd.DataFrame({"image": ["a", "b", "c", "d", "e"], "label": ["1", "1", "2", "2", "3"]})
    with pytest.raises(DataError, match="2 identities with at least 2 images, fewer than k=3"):
        make_folds(train, 3, 0, 0.2)


def test_fold_indices_unknown_fold() -> None:
    with pytest.raises(ValueError, match=r"fold 5 is not in the folds table \(folds: \[0, 1, 2, 3, 4\]\)"):
        fold_indices(make_folds(_train(), 5, 0, 0.2), 5)


@pytest.mark.parametrize(
    ("section", "message"),
    [("{k: 1}", "k must be at least 2"), ("{query_fraction: 1.0}", r"query_fraction must be in \(0, 1\)"), ("{K: 3}", "unknown key 'folds.K'")],
)
def test_config_validation(tmp_path: Path, section: str, message: str) -> None:
    (tmp_path / "params.yaml").write_text(f"folds: {section}\n")
    with pytest.raises(ConfigError, match=message):
        load_section("folds", FoldsConfig, tmp_path / "params.yaml")


def test_stage_writes_folds_csv(tmp_path: Path) -> None:
    root = tmp_path / "clean"
    train = _train(identities=12)
    for image in train["image"]:
        (root / image).parent.mkdir(parents=True, exist_ok=True)
        (root / image).write_bytes(b"x")
    write_split(root, "train", train)
    (tmp_path / "params.yaml").write_text("dataset: {root: src}\ndenoise: {out: clean}\nfolds: {out: out/folds.csv, k: 3, seed: 1, label_merge: null}\n")
    done = subprocess.run(
        [sys.executable, str(REPO / "stages" / "folds.py"), "--params", "params.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    folds = read_folds(tmp_path / "out" / "folds.csv")
    pd.testing.assert_frame_equal(folds, make_folds(train, 3, 1, 0.2))
    assert folds["label"].str.len().eq(3).all()  # zero-padded labels ("007") survive the CSV


def test_read_folds_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"folds\.csv: file not found"):
        read_folds(tmp_path / "folds.csv")
    (tmp_path / "folds.csv").write_text("image,label,fold,role\na.jpg,1,x,query\n")
    with pytest.raises(DataError, match="column 'fold' must hold integers"):
        read_folds(tmp_path / "folds.csv")


@pytest.mark.parametrize(("labels", "way_on"), [
    (["1", "2", "3", "4"], r"add a second image of at least 2 identities \(one to query, one to find\)"),
    (["1", "1", "2", "2", "3"], r"set folds\.k to 2, or add images"),
])
def test_the_stage_names_the_users_train_file_and_what_would_train_it(tmp_path: Path, labels: list[str], way_on: str) -> None:
    """Every identity with one image (or too few with two): the error names the dataset's own
    train.csv, not the denoised copy, and says how to get folds.k folds."""
    from stages.folds import main

    train = pd.DataFrame({"image": [f"{i}.jpg" for i in range(len(labels))], "label": labels})
    for image in train["image"]:
        (tmp_path / "clean" / image).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "clean" / image).write_bytes(b"x")
    write_split(tmp_path / "clean", "train", train)
    params = tmp_path / "params.yaml"
    params.write_text(f"dataset: {{root: {tmp_path / 'mine'}}}\ndenoise: {{out: {tmp_path / 'clean'}}}\n"
                      f"folds: {{out: {tmp_path / 'folds.csv'}, k: 3}}\n")
    with pytest.raises(DataError, match=rf"^{tmp_path}/mine/train\.csv has \d identities with at least 2 images, fewer than "
                                        rf"k=3 folds: each fold validates on held-out identities .*; {way_on}$"):
        main(["--params", str(params)])
