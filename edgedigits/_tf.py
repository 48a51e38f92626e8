"""Import TensorFlow/Keras quietly, or say which pip command installs them."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

from edgedigits.errors import MissingExtraError


def quiet_tf() -> None:
    """Silence TF's C++ start-up chatter before the first import (users can override)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Point fd 2 at /dev/null: TF's C++ logs CUDA probing noise before any flag is read.

    Python exceptions still propagate; they are printed after fd 2 is restored.
    """
    if "tensorflow" in sys.modules or os.environ.get("EDGEDIGITS_TF_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tf(what: str) -> ModuleType:
    """Return tensorflow, or raise MissingExtraError naming `what` needed it."""
    quiet_tf()
    try:
        with silenced_stderr():
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe logs here, once
    except ImportError as exc:
        raise MissingExtraError(what) from exc
    return tf


def import_keras(what: str) -> ModuleType:
    """Return keras (TensorFlow backend), or raise MissingExtraError naming `what`."""
    import_tf(what)
    try:
        import keras
    except ImportError as exc:
        raise MissingExtraError(what) from exc
    return keras
