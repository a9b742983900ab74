import os
import stat

import pandas as pd
import pytest

from pipeline.io_utils import atomic_dir, atomic_path, write_csv, write_json


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_existing_file_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
            raise RuntimeError
    assert target.read_text() == "old"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_atomic_dir_swaps_whole_folder(tmp_path):
    target = tmp_path / "folder"
    target.mkdir()
    (target / "stale.txt").write_text("stale")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("a")
            raise RuntimeError
    assert sorted(p.name for p in target.iterdir()) == ["stale.txt"]
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("a")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_writers_round_trip(tmp_path):
    frame = pd.DataFrame({"image": ["a.png"], "label": ["007"]})
    write_csv(tmp_path / "t.csv", frame)
    assert pd.read_csv(tmp_path / "t.csv", dtype=str).equals(frame)
    write_json(tmp_path / "m.json", {"score": 0.5})
    assert (tmp_path / "m.json").read_text() == '{\n  "score": 0.5\n}\n'


def test_outputs_get_the_usual_modes_not_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_read_text_errors_name_the_file(tmp_path):
    from pipeline.errors import DataError
    from pipeline.io_utils import read_text

    with pytest.raises(DataError, match="missing.txt: file not found"):
        read_text(tmp_path / "missing.txt")
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DataError, match="latin.txt: not UTF-8 text"):
        read_text(tmp_path / "latin.txt")
    (tmp_path / "ok.txt").write_text("ok", encoding="utf-8")
    assert read_text(tmp_path / "ok.txt") == "ok"
