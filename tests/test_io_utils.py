import os
import stat

import pandas as pd
import pytest

from pipeline.core.io_utils import atomic_dir, atomic_path, write_csv, write_json


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
    from pipeline.core.errors import DataError
    from pipeline.core.io_utils import read_text

    with pytest.raises(DataError, match="missing.txt: file not found"):
        read_text(tmp_path / "missing.txt")
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DataError, match="latin.txt: not UTF-8 text"):
        read_text(tmp_path / "latin.txt")
    (tmp_path / "ok.txt").write_text("ok", encoding="utf-8")
    assert read_text(tmp_path / "ok.txt") == "ok"


def _killed_writer(tmp_path, code: str) -> None:
    """Run ``code`` (which prints 'ready' inside an atomic block) in a child and SIGKILL it there."""
    import signal
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_the_next_write_removes_temporaries_left_by_a_killed_run(tmp_path):
    out = tmp_path / "out"
    _killed_writer(tmp_path, "import time; from pipeline.core.io_utils import atomic_dir\n"
                             "with atomic_dir('out/cache') as t:\n (t / 'big.npy').write_bytes(b'x' * 1000); print('ready', flush=True); time.sleep(60)")
    (cache_tmp,) = out.iterdir()  # what a kill leaves behind
    assert cache_tmp.name.startswith(".cache.") and cache_tmp.name.endswith(".tmp")
    legacy = out / ".denoised.ab12cd_9.tmp"  # the form written before writer ids
    legacy.mkdir()
    live = out / f".other.{os.getpid()}-abcdefgh.tmp"  # a writer still running: not touched
    live.write_text("in progress")
    (out / ".notes.tmp").write_text("not ours")
    # The next process that writes there sweeps the dead writers' leftovers, then is killed too.
    _killed_writer(tmp_path, "import time; from pipeline.core.io_utils import atomic_path\n"
                             "with atomic_path('out/last.pt') as t:\n t.write_bytes(b'x'); print('ready', flush=True); time.sleep(60)")
    (checkpoint_tmp,) = (p for p in out.iterdir() if p.name.startswith(".last.pt."))
    assert sorted(p.name for p in out.iterdir()) == sorted([".notes.tmp", live.name, checkpoint_tmp.name])
    with atomic_path(out / "last.pt") as tmp:
        tmp.write_text("new")
    assert sorted(p.name for p in out.iterdir()) == sorted([".notes.tmp", live.name, "last.pt"])
