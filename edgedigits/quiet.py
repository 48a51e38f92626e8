"""Silence native libraries (TF, LiteRT) that print to the process's fds directly."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def silenced(*fds: int) -> Iterator[None]:
    """Point the given fds (default stdout and stderr) at /dev/null for the block.

    Python exceptions still propagate and are printed after the fds are restored.
    Set EDGEDIGITS_VERBOSE=1 to see everything.
    """
    fds = fds or (1, 2)
    if os.environ.get("EDGEDIGITS_VERBOSE"):
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
