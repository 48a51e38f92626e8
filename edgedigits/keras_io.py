"""Keras models as data: load a `.keras` file safely and run it as a Classifier.

The TensorFlow side of the runtime: edgedigits.runtime hands `.keras` files here, so the
edge modules never import Keras.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgedigits.contract import ClassifierBase, check_batch, input_rank, to_rank
from edgedigits.errors import ModelError, first_line


class KerasClassifier(ClassifierBase):
    backend = "keras"

    def __init__(self, path: Path, threads: int | None = None, model: Any = None) -> None:
        """`model`: a Keras model already in memory (training, export's reference); else
        `path` is loaded."""
        self.path = path
        self.model = load_keras_model(path) if model is None else model
        self.rank = len(self.model.input_shape)
        self.device = "TensorFlow"

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(to_rank(check_batch(x), self.rank), training=False))

    def metadata(self) -> dict[str, str]:
        from edgedigits.metadata import read_metadata

        return read_metadata(self.path)


def load_keras_model(path: Path) -> Any:
    """Load a `.keras` file as data (safe_mode=True), checking the seed's I/O shapes."""
    from edgedigits._tf import import_keras

    keras = import_keras(f"loading {path.name}")
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise ModelError(
            f"{path}: not a .keras archive (corrupt or truncated); re-run "
            "`edgedigits train` or pass another model"
        )
    _check_archive(path)
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError/TypeError/KeyError/OSError variously
        raise ModelError(f"{path}: cannot load this Keras model ({first_line(exc)})") from exc
    input_rank(path, list(model.input_shape), list(model.output_shape))
    return model


MAX_KERAS_BYTES = 512 << 20  # uncompressed; the seed MLP's .keras holds ~3 MB, the CNN's ~1.2 MB
MAX_KERAS_MEMBERS = 1000
MAX_RATIO = 200  # uncompressed / compressed of one large member: weights do not compress 200x


def _check_archive(path: Path) -> None:
    """Refuse a .keras zip bomb before Keras inflates it: too large in all, too many members,
    or a large member compressed beyond any real weights."""
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
    problems = [f"{len(members)} members"] if len(members) > MAX_KERAS_MEMBERS else []
    total = sum(m.file_size for m in members)
    if total > MAX_KERAS_BYTES:
        problems.append(f"{total:,} bytes uncompressed")
    problems += [
        f"{m.filename} compressed {m.file_size // max(m.compress_size, 1)}x"
        for m in members
        if m.file_size > (1 << 20) and m.file_size > MAX_RATIO * max(m.compress_size, 1)
    ]
    if problems:
        raise ModelError(f"{path}: refused before loading: {problems[0]}, not a digit model's archive")
