"""Atomic output writing: a killed stage never leaves a half file that looks finished.

Every writer goes to a temporary name in the destination folder and renames it into place
only once the content is complete (``os.replace`` is atomic on one filesystem).

A kill (SIGKILL, power loss) skips the clean-up, so a temporary can outlive its writer: a
denoised copy or a cache folder is hundreds of MB. Temporaries are named
``.<target>.<pid>-<random>.tmp``; the first write into a folder (per process) removes the
temporaries there whose writer process is gone, and those of the older ``.<target>.<random>.tmp``
form, which carry no writer id.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.errors import DataError

# mkstemp/mkdtemp's random part: 8 characters of [a-z0-9_].
_TEMPORARY = re.compile(r"^\..+\.(?:(?P<pid>\d+)-)?[a-z0-9_]{8}\.tmp$")
_swept: set[Path] = set()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _publish(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create owner-only files (0600/0700); give the result the usual modes."""
    os.chmod(path, mode & ~_umask())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries in ``folder`` left by writers that no longer run; return them."""
    removed = []
    for entry in folder.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match is None or (match["pid"] is not None and _alive(int(match["pid"]))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _prepare(target: Path) -> str:
    """Create ``target``'s folder, sweep it once per process; return the temporary's name prefix."""
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    resolved = folder.resolve()
    if resolved not in _swept:
        remove_stale_temporaries(folder)
        _swept.add(resolved)
    return f".{target.name}.{os.getpid()}-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=_prepare(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _publish(tmp, 0o666)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; swap it in for ``path`` on success."""
    target = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prepare(target), suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        _publish(tmp, 0o777)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_text(path: str | os.PathLike[str], encoding: str = "utf-8") -> str:
    """A text file's content, with a DataError naming the file when it is missing or not UTF-8."""
    try:
        return Path(path).read_text(encoding=encoding)
    except FileNotFoundError as error:
        raise DataError(f"{path}: file not found") from error
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error


def read_string_csv(path: str | os.PathLike[str], columns: Sequence[str], not_found: str = "file not found") -> pd.DataFrame:
    """A CSV read with every cell a string (labels such as ``007`` stay as written); a missing
    or empty file, or a missing one of ``columns``, is a DataError naming the file."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as error:
        raise DataError(f"{path}: {not_found}") from error
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{path}: empty file (expected the columns {','.join(columns)})") from error
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column '{missing[0]}' (expected {','.join(columns)})")
    return table
