"""Atomic, reproducible writes, and loads that say what is wrong with a file."""

import numpy as np
import pytest

from mnistnet.storage import DataError, atomic_path, load_npz, save_npz, write_text


def test_save_npz_is_byte_identical_and_loads_without_pickle(tmp_path):
    arrays = {"b": np.arange(5, dtype=np.int16), "a": np.eye(3, dtype=np.float32)}
    save_npz(tmp_path / "one.npz", arrays)
    save_npz(tmp_path / "two.npz", arrays)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    loaded = load_npz(tmp_path / "one.npz", {"a": (np.float32, 2), "b": (np.int16, 1)}, "fix")
    np.testing.assert_array_equal(loaded["a"], arrays["a"])


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path):
    path = tmp_path / "out.txt"
    write_text(path, "old")
    with pytest.raises(OSError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_interrupt_during_write_leaves_previous_file(tmp_path):
    path = tmp_path / "model.npz"
    save_npz(path, {"x": np.zeros(3)})
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert path.read_bytes() == before
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize(
    ("content", "schema", "message"),
    [
        (None, {"x": (np.float32, 2)}, "file not found. Do this"),
        (b"not a zip", {"x": (np.float32, 2)}, "not a readable .npz file"),
        ({"y": np.zeros(2)}, {"x": (np.float32, 2)}, r"missing arrays \['x'\]"),
        ({"x": np.zeros(2)}, {"x": (np.float32, 2)}, "'x' is float64 with shape \\(2,\\)"),
    ],
)
def test_load_npz_errors_name_the_file_and_the_fix(tmp_path, content, schema, message):
    path = tmp_path / "f.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        save_npz(path, content)
    with pytest.raises(DataError, match=message) as info:
        load_npz(path, schema, "Do this.")
    assert str(path) in str(info.value) and "Do this." in str(info.value)


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(ValueError, match="pickle"):
        save_npz(tmp_path / "o.npz", {"o": np.array([{}], dtype=object)})
    assert not (tmp_path / "o.npz").exists()
