"""Atomic file writes: a temp file in the same folder, fsync, then os.replace.

A crash or Ctrl-C never leaves a half-written file under its final name, and the
previous version of the file stays intact until the new one is complete. Streams are the
exception: `-` (standard output) and a target that exists and is not a regular file
(/dev/stdout, /dev/null, a FIFO, a socket) are written in place, never replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path next to `final`; on success move it over `final`.

    The temp name keeps the final suffix (Keras insists on `.keras`). On any
    exception, KeyboardInterrupt included, the temp file is deleted and `final`
    is left as it was.
    """
    final = Path(final)
    tmp = final.with_name(temp_name(final.name))
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OSError(f"writing {final} produced an empty file")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename and Path(exc.filename).name == tmp.name:
            # name the file the user knows (checkpoint.keras), not the temp file that is gone
            raise OSError(exc.errno, exc.strerror, str(final)) from exc
        raise


def temp_name(name: str) -> str:
    """`.tmp-<pid>-<random>-<name>`: the pid lets clean_stale tell an orphan from work in progress."""
    return f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{name}"


def clean_stale(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temp files left by writers that died (kill -9, power loss); return them.

    A temp file whose writer is still running (another export into the same folder)
    is left alone.
    """
    removed = []
    for path in Path(folder).glob(".tmp-*"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def is_stream(path: str | os.PathLike[str]) -> bool:
    """`-`, or an existing target that is not a regular file: written in place."""
    if os.fspath(path) == "-":
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)  # follows /dev/stdout -> /proc/self/fd/1
    except OSError:  # does not exist yet: a regular file to be
        return False


@contextlib.contextmanager
def open_stream(path: str | os.PathLike[str], mode: str = "w") -> Iterator[Any]:
    """Standard output for `-`, else the target opened as it is (no temp file, no rename)."""
    if os.fspath(path) == "-":
        out = sys.stdout if "b" not in mode else sys.stdout.buffer
        yield out
        out.flush()
        return
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
        yield fh


def check_writable(path: str | os.PathLike[str], option: str) -> None:
    """Before the long work: the output's folder exists (it is created) and is writable.

    Raises:
        OptionError: one line naming the option (e.g. "output_jsonl"), the path and the cause.
    """
    from edgedigits.errors import OptionError

    if is_stream(path):
        return
    folder = Path(path).expanduser().resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError(option, f"{path}: cannot create {folder} ({exc.strerror})") from exc
    if not os.access(folder, os.W_OK):
        raise OptionError(option, f"{path}: {folder} is not writable; choose another path")


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    if is_stream(path):
        with open_stream(path, "wb") as fh:
            fh.write(data)
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
