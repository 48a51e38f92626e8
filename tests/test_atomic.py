import pytest

from edgedigits import atomic


def test_replaces_only_when_complete(tmp_path):
    path = tmp_path / "model.bin"
    atomic.write_bytes(path, b"old")
    with pytest.raises(RuntimeError), atomic.atomic_path(path) as tmp:
        tmp.write_bytes(b"half-writ")
        raise RuntimeError("crash mid-write")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]  # temp file cleaned up


def test_keyboard_interrupt_also_cleans_up(tmp_path):
    path = tmp_path / "a.json"
    with pytest.raises(KeyboardInterrupt), atomic.atomic_path(path) as tmp:
        tmp.write_text("{")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_empty_result_is_refused(tmp_path):
    path = tmp_path / "m.onnx"
    atomic.write_bytes(path, b"good")
    with pytest.raises(OSError, match="empty"), atomic.atomic_path(path) as tmp:
        tmp.write_bytes(b"")
    assert path.read_bytes() == b"good"


def test_temp_keeps_suffix(tmp_path):
    with atomic.atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")


def test_clean_stale_removes_only_orphans(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()  # a pid now gone
    orphan = tmp_path / f".tmp-{dead}-abcd1234-model.onnx"
    orphan.write_bytes(b"half")
    mine = tmp_path / atomic.temp_name("model.tflite")  # this process: still writing
    mine.write_bytes(b"in progress")
    (tmp_path / "model.keras").write_bytes(b"final")
    assert atomic.clean_stale(tmp_path) == [orphan]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "model.keras"])
