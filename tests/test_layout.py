"""Canonical layout reader/writer: valid tables load as strings; every bad table names file and line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.data.layout import SPLITS, Dataset, csv_line, load_dataset, read_split, write_split
from pipeline.core.params import load_section
from pipeline.core.errors import ConfigError, DataError
from pipeline.core.sections import DatasetConfig


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def _write(root: Path, split: str, text: str) -> Path:
    path = root / f"{split}.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _touch(tmp_path, "img/a.jpg", "img/b.jpg", "img/c.jpg", "img/d.jpg")
    _write(tmp_path, "train", "image,label,camera\nimg/a.jpg,007,c1\nimg/b.jpg,007,c2\n")
    _write(tmp_path, "query", "image,label\nimg/c.jpg,12\n")
    _write(tmp_path, "gallery", "image\nimg/d.jpg\n")
    return tmp_path


def test_splits_constant() -> None:
    assert SPLITS == ("train", "query", "gallery")


def test_read_split_keeps_strings(root: Path) -> None:
    train = read_split(root, "train")
    assert list(train.columns) == ["image", "label", "camera"]
    assert train["label"].tolist() == ["007", "007"]
    assert train["image"].tolist() == ["img/a.jpg", "img/b.jpg"]
    assert all(isinstance(v, str) for v in train["label"])


def test_optional_columns_and_canonical_order(root: Path) -> None:
    _write(root, "query", "camera,image,label\nc3,img/c.jpg,NA\n")
    query = read_split(root, "query")
    assert list(query.columns) == ["image", "label", "camera"]
    assert query.iloc[0].tolist() == ["img/c.jpg", "NA", "c3"]  # "NA" is a label, not a missing value
    assert list(read_split(root, "gallery").columns) == ["image"]


def test_load_dataset(root: Path) -> None:
    dataset = load_dataset(root)
    assert isinstance(dataset, Dataset)
    assert dataset.root == root
    assert len(dataset.train) == 2 and len(dataset.query) == 1 and len(dataset.gallery) == 1
    assert dataset.split("gallery") is dataset.gallery


def test_load_dataset_requires_all_three(root: Path) -> None:
    (root / "gallery.csv").unlink()
    with pytest.raises(DataError, match=r"gallery\.csv: file not found"):
        load_dataset(root)


def test_bom_and_blank_lines_are_tolerated_with_exact_line_numbers(root: Path) -> None:
    (root / "train.csv").write_text("\ufeffimage,label\n\nimg/a.jpg,1\n\nimg/a.jpg,2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.csv: line 5: duplicate image 'img/a.jpg' \(first listed on line 3\)"):
        read_split(root, "train")


def test_quoted_cells(root: Path) -> None:
    _touch(root, "img/with, comma.jpg")
    _write(root, "train", 'image,label\n"img/with, comma.jpg",1\n')
    assert read_split(root, "train")["image"].tolist() == ["img/with, comma.jpg"]


@pytest.mark.parametrize("name", ["with, comma.jpg", "{brace}.jpg", "close}.jpg"])
def test_query_gallery_names_the_submission_cannot_carry_are_refused_with_their_line(root: Path, name: str) -> None:
    _touch(root, f"img/{name}")
    for split in ("query", "gallery"):
        _write(root, split, f'image\nimg/a.jpg\n\n"img/{name}"\n')
        with pytest.raises(DataError, match=rf"{split}\.csv: line 4: image name .* cannot be written into the submission"):
            read_split(root, split)


def test_query_gallery_base_names_must_differ(root: Path) -> None:
    _touch(root, "x/a.jpg", "y/a.jpg")
    _write(root, "gallery", "image\nx/a.jpg\ny/a.jpg\n")
    with pytest.raises(DataError, match=r"gallery\.csv: line 3: image name 'a\.jpg' is also the name on line 2"):
        read_split(root, "gallery")
    _write(root, "train", "image,label\nx/a.jpg,1\ny/a.jpg,2\n")  # train names never reach the submission
    assert len(read_split(root, "train")) == 2


def test_extra_columns_are_read_past_with_one_warning(root: Path, caplog) -> None:
    _touch(root, "img/b.jpg")
    _write(root, "train", "x1,image,y1,label,color\n0,img/a.jpg,5,1,red\n\n3,img/b.jpg,9,2,blue\n")
    with caplog.at_level("WARNING"):
        table = read_split(root, "train")
    assert table.to_dict("list") == {"image": ["img/a.jpg", "img/b.jpg"], "label": ["1", "2"]}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "'x1', 'y1', 'color'" in warnings[0]
    assert [csv_line(table, row) for row in range(2)] == [2, 4]  # the blank line 3 is skipped


@pytest.mark.parametrize(
    ("split", "text", "message"),
    [
        ("train", "", r"train\.csv: empty file"),
        ("train", "\n  \n", r"train\.csv: empty file"),
        ("train", "image,label\n", r"train\.csv: no data rows"),
        ("train", "image,camera\nimg/a.jpg,c1\n", r"train\.csv: line 1: missing required column 'label'"),
        ("query", "label\n1\n", r"query\.csv: line 1: missing required column 'image'"),
        ("query", "image,lable\nimg/a.jpg,1\n", r"query\.csv: line 1: unknown column 'lable' \(did you mean 'label'\?\)"),
        ("query", "Images,label\nimg/a.jpg,1\n", r"query\.csv: line 1: unknown column 'Images' \(did you mean 'image'\?\)"),
        ("query", "image,image\nimg/a.jpg,img/b.jpg\n", r"query\.csv: line 1: repeated column"),
        ("train", "image,label\nimg/a.jpg,1\nimg/b.jpg,\n", r"train\.csv: line 3: empty 'label' cell"),
        ("train", "image,label\nimg/a.jpg,1\n ,2\n", r"train\.csv: line 3: empty 'image' cell"),
        ("train", "image,label\nimg/a.jpg,1,extra\n", r"train\.csv: line 2: expected 2 fields"),
        ("gallery", "image\nimg/a.jpg\nimg/b.jpg\nimg/a.jpg\n", r"gallery\.csv: line 4: duplicate image 'img/a.jpg' \(first listed on line 2\)"),
        ("gallery", "image\nimg/a.jpg\n./img/a.jpg\n", r"gallery\.csv: line 3: duplicate image '\./img/a\.jpg'"),
        ("gallery", "image\n/etc/passwd\n", r"gallery\.csv: line 2: image path '/etc/passwd' is absolute"),
        ("gallery", "image\nC:\\data\\a.jpg\n", r"gallery\.csv: line 2: image path .* is absolute"),
        ("gallery", "image\nimg/a.jpg\n../outside.jpg\n", r"gallery\.csv: line 3: image path '\.\./outside\.jpg' points outside"),
        ("gallery", "image\nimg/../../outside.jpg\n", r"gallery\.csv: line 2: .* points outside"),
        ("gallery", "image\nimg/a.jpg\nimg/missing.jpg\n", r"gallery\.csv: line 3: image file not found: .*img/missing\.jpg"),
        ("gallery", 'image\n"img/a.jpg\n', r"gallery\.csv: line 2: malformed CSV \(unexpected end of data\)"),
    ],
)
def test_bad_tables(root: Path, split: str, text: str, message: str) -> None:
    _write(root, split, text)
    with pytest.raises(DataError, match=message):
        read_split(root, split)


def test_missing_csv_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"{tmp_path}/query\.csv: file not found"):
        read_split(tmp_path, "query")


def test_dot_dot_inside_the_root_is_allowed_and_read_normalised(root: Path) -> None:
    _write(root, "gallery", "image\nimg/../img/a.jpg\n")
    assert read_split(root, "gallery")["image"].tolist() == ["img/a.jpg"]


def test_a_backslash_path_is_read_as_the_file_it_names(root: Path) -> None:
    """The reader checks ``img/c.jpg`` for ``img\\c.jpg``: every stage must then open that file,
    so the table carries the path the reader found, not the string as written."""
    _write(root, "query", "image,label\nimg\\c.jpg,12\n")
    assert read_split(root, "query")["image"].tolist() == ["img/c.jpg"]


def test_label_and_camera_cells_lose_surrounding_whitespace_with_one_counting_warning(root: Path, caplog) -> None:
    """' id1' beside 'id1' is one identity, not two; image cells are left as written."""
    _touch(root, "img/e.jpg")
    _write(root, "train", "image,label,camera\nimg/a.jpg,id1,c1\nimg/b.jpg, id1,c2 \nimg/e.jpg,\tid2 , c1\n")
    with caplog.at_level("WARNING"):
        train = read_split(root, "train")
    assert train["label"].tolist() == ["id1", "id1", "id2"] and train["camera"].tolist() == ["c1", "c2", "c1"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{root / 'train.csv'}: read 2 label cells and 2 camera cells without their surrounding "
                        "whitespace (first on line 3)"]
    caplog.clear()
    with caplog.at_level("WARNING"):
        read_split(root, "query")
    assert not caplog.records  # nothing stripped, nothing said


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab"), ("|", "vertical bar")])
def test_another_delimiter_is_named(root: Path, delimiter: str, name: str) -> None:
    _write(root, "train", f"image{delimiter}label\nimg/a.jpg{delimiter}1\n")
    with pytest.raises(DataError, match=rf"train\.csv: line 1: the header .* is one field holding a {name}: the file "
                                        rf"looks {name}-separated; the canonical layout separates columns with commas"):
        read_split(root, "train")


def test_a_folder_is_called_a_folder_and_a_missing_file_shows_both_paths(root: Path) -> None:
    _write(root, "gallery", "image\nimg\n")
    with pytest.raises(DataError, match=rf"gallery\.csv: line 2: 'img' is a directory, not an image file \(resolved: {root}/img\)"):
        read_split(root, "gallery")
    _write(root, "gallery", "image\nimg\\gone.jpg\n")
    with pytest.raises(DataError, match=r"gallery\.csv: line 2: image file not found: 'img\\gone\.jpg' "
                                        rf"\(resolved: {root}/img/gone\.jpg\)"):
        read_split(root, "gallery")


def test_check_files_false_skips_the_file_check(root: Path) -> None:
    _write(root, "gallery", "image\nnot/there.jpg\n")
    assert read_split(root, "gallery", check_files=False)["image"].tolist() == ["not/there.jpg"]


def test_unknown_split(root: Path) -> None:
    with pytest.raises(ValueError, match="unknown split 'val'"):
        read_split(root, "val")


def test_write_split_round_trip_in_canonical_order(tmp_path: Path) -> None:
    frame = pd.DataFrame({"camera": ["c1", "c2"], "label": ["007", "8"], "image": ["a.jpg", "b.jpg"]})
    _touch(tmp_path, "a.jpg", "b.jpg")
    path = write_split(tmp_path, "train", frame)
    assert path.read_text().splitlines() == ["image,label,camera", "a.jpg,007,c1", "b.jpg,8,c2"]
    pd.testing.assert_frame_equal(read_split(tmp_path, "train"), frame[["image", "label", "camera"]].astype(str))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "b.jpg", "train.csv"]


def test_write_split_rejects_bad_frames(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="required column 'label'"):
        write_split(tmp_path, "train", pd.DataFrame({"image": ["a.jpg"]}))
    with pytest.raises(DataError, match="unknown column 'fold'"):
        write_split(tmp_path, "query", pd.DataFrame({"image": ["a.jpg"], "fold": [1]}))
    with pytest.raises(DataError, match="missing value in column 'label'"):
        write_split(tmp_path, "query", pd.DataFrame({"image": ["a.jpg"], "label": [None]}))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("preprocess: {size: 8}\n", r"params\.yaml: missing section 'dataset'"),
        ("dataset: {rot: data}\n", r"params\.yaml: unknown key 'dataset\.rot'"),
        ("dataset: {root: 3}\n", r"'dataset\.root' must be a string, got 3"),
        ("dataset: {root: ''}\n", r"root must not be empty"),
    ],
)
def test_dataset_section_errors_name_the_key(tmp_path: Path, params: str, message: str) -> None:
    (tmp_path / "params.yaml").write_text(params)
    with pytest.raises(ConfigError, match=message):
        load_section("dataset", DatasetConfig, tmp_path / "params.yaml")


def test_dataset_section(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("dataset: {root: ../shared/data/grocery}\n")
    assert load_section("dataset", DatasetConfig, tmp_path / "params.yaml").root == "../shared/data/grocery"
