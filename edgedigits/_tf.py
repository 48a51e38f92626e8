"""Import TensorFlow/Keras quietly, or say which pip command installs them."""

from __future__ import annotations

import contextlib
import os
import sys
from types import ModuleType

from edgedigits.errors import MissingExtraError
from edgedigits.quiet import silenced


def quiet_tf() -> None:
    """Silence TF's C++ start-up chatter before the first import (users can override)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")


def import_tf(what: str) -> ModuleType:
    """Return tensorflow, or raise MissingExtraError naming `what` needed it."""
    quiet_tf()
    try:
        with contextlib.nullcontext() if "tensorflow" in sys.modules else silenced(2):
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
