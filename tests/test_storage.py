"""Atomic, reproducible writes, and loads that say what is wrong with a file."""

import bz2
import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from conftest import ROOT, zip_of_one
from mnistnet.data import untrusted
from mnistnet.data.untrusted import load_npz as load_untrusted_npz
from mnistnet.data.untrusted import npz_names
from mnistnet.pipeline import storage
from mnistnet.pipeline.errors import DataError, OutputError
from mnistnet.pipeline.storage import all_or_nothing, atomic_path, load_npz, save_npz, write_text


def test_save_npz_is_byte_identical_and_loads_without_pickle(tmp_path):
    arrays = {"b": np.arange(5, dtype=np.int16), "a": np.eye(3, dtype=np.float32)}
    save_npz(tmp_path / "one.npz", arrays)
    save_npz(tmp_path / "two.npz", arrays)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    loaded = load_npz(tmp_path / "one.npz", {"a": (np.float32, 2), "b": (np.int16, 1)}, "fix")
    np.testing.assert_array_equal(loaded["a"], arrays["a"])


def test_save_npz_bytes_do_not_depend_on_the_python_release(tmp_path):
    """These exact bytes came from Python 3.11.2, 3.11.7, 3.12.1 and 3.13.0 alike. Forcing
    zip64 headers, as this function once did, gave different bytes under 3.11.2 and 3.11.7,
    so a clone set up with another Python saw every DVC output from download on as changed."""
    path = tmp_path / "fixed.npz"
    save_npz(path, {"x": np.arange(6, dtype=np.uint8).reshape(2, 3), "meta": np.array("{}")})
    data = path.read_bytes()
    assert data[4:6] == b"\x14\x00"  # "version needed to extract" 2.0: no zip64 records
    assert hashlib.sha256(data).hexdigest() == (
        "8dc038fe0d37c9150475ab25f5eeaa5366802bfa4039151518e9723b19b04059"
    )


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path):
    path = tmp_path / "out.txt"
    write_text(path, "old")
    with pytest.raises(
        OutputError, match=f"{path}: could not write it \\(No space left on device\\). Free"
    ):
        with atomic_path(path) as tmp:
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


def test_all_or_nothing_replaces_every_output_at_the_end_or_none(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    write_text(a, "old a")
    write_text(b, "old b")
    with pytest.raises(KeyboardInterrupt), all_or_nothing() as outputs:
        write_text(a, "new a")
        assert a.read_text() == "old a"  # not renamed yet
        raise KeyboardInterrupt  # before b was written
    assert not outputs.committed
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]

    with all_or_nothing() as outputs:
        write_text(a, "new a")
        write_text(b, "new b")
    assert outputs.committed
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_a_signal_during_the_renames_waits_until_all_are_done(tmp_path, monkeypatch):
    paths = [tmp_path / f"{i}.txt" for i in range(3)]
    real_replace = os.replace
    calls = []

    def replace_and_get_interrupted(src, dst):
        if not calls:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between the first and second rename
        calls.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(storage.os, "replace", replace_and_get_interrupted)
    with pytest.raises(KeyboardInterrupt), all_or_nothing() as outputs:
        for path in paths:
            write_text(path, path.name)
    assert outputs.committed
    assert [p.read_text() for p in paths] == ["0.txt", "1.txt", "2.txt"]


def test_a_stage_interrupted_between_two_outputs_replaces_neither(tmp_path):
    """A stage script under ``stage.run`` that gets SIGTERM after writing its first output."""
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "b.txt").write_text("old b")
    script = tmp_path / "stage.py"
    script.write_text(
        textwrap.dedent("""
        import os, signal
        from mnistnet.pipeline.stage import run
        from mnistnet.pipeline.storage import write_text

        def main():
            write_text("a.txt", "new a")
            os.kill(os.getpid(), signal.SIGTERM)
            write_text("b.txt", "new b")

        run(main)
    """)
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 130
    assert "interrupted: no output was written or replaced" in result.stderr
    assert (tmp_path / "a.txt").read_text() == "old a"
    assert (tmp_path / "b.txt").read_text() == "old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "stage.py"]


@pytest.mark.parametrize(
    ("content", "schema", "message"),
    [
        (None, {"x": (np.float32, 2)}, "not a readable .npz file .*No such file"),
        (b"not a zip", {"x": (np.float32, 2)}, "not a readable .npz file"),
        ({"y": np.zeros(2)}, {"x": (np.float32, 2)}, r"array 'x' is missing"),
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


def deflated(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate, as zip stores it
    return packer.compress(data) + packer.flush()


def test_an_npz_is_never_expanded_past_its_limit(tmp_path):
    """A small deflated .npz can declare gigabytes: what the members declare is summed and
    checked before anything is inflated, a stream that inflates past its member's declared
    size is cut off there, and bzip2/LZMA members (whose expansion zipfile hands over in one
    piece) are refused. The allocations stay far below the data the streams hold."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (4096, 28, 28)}
    )
    bomb = header.getvalue() + bytes(4096 * 784)  # 3.2 MB of zeros, deflated to 3 KB
    (tmp_path / "bomb.npz").write_bytes(
        zip_of_one(b"x.npy", deflated(bomb), 8, zlib.crc32(bomb), len(bomb))
    )
    digit = np.arange(784, dtype=np.uint8).reshape(28, 28)
    one = io.BytesIO()
    np.save(one, digit)
    long_stream = one.getvalue() + bytes(8 * 2**20)  # inflates 8 MB past what it declares
    (tmp_path / "long.npz").write_bytes(
        zip_of_one(b"x.npy", deflated(long_stream), 8, zlib.crc32(one.getvalue()), one.tell())
    )
    (tmp_path / "bzip2.npz").write_bytes(
        zip_of_one(b"x.npy", bz2.compress(bomb), 12, zlib.crc32(bomb), len(bomb))
    )
    schema = {"x": (np.uint8, None)}
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as refused:
            load_untrusted_npz(tmp_path / "bomb.npz", schema, "Fix.", max_bytes=2**20)
        assert str(refused.value) == (
            f"{tmp_path / 'bomb.npz'}: its arrays ['x'] expand to {len(bomb):,} bytes; "
            f"at most 1,048,576 are read. Fix."
        )
        assert np.array_equal(load_untrusted_npz(tmp_path / "long.npz", schema, "")["x"], digit)
        with pytest.raises(DataError, match="compression method 12; only stored and deflated"):
            load_untrusted_npz(tmp_path / "bzip2.npz", schema, "")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak:,} bytes allocated"
    assert untrusted.MAX_BYTES > 55_000_000  # the Keras MNIST download still loads


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_a_zip_directory_of_too_many_members_is_refused_before_zipfile_reads_it(tmp_path):
    """zipfile makes an object of each directory entry (~600 bytes for ~50 on disk): a 60 MB
    archive of empty members would cost it 450 MB. An .npz has one member per array."""
    with zipfile.ZipFile(tmp_path / "many.npz", "w") as zf:
        zf.writestr("x.npy", npy_bytes(np.zeros((28, 28), np.uint8)))
        for i in range(5_000):  # 266-byte entries: 1.3 MB of directory
            zf.writestr(f"{i:06d}".ljust(220, "-"), b"")
    tracemalloc.start()
    try:
        for read in (
            lambda p: load_untrusted_npz(p, {"x": (None, None)}, "Fix."),
            lambda p: npz_names(p, "Fix."),
        ):
            with pytest.raises(
                DataError,
                match=r"many.npz: its zip directory is 1,.* bytes, "
                r"too many members for an .npz \(one per array\); at most "
                r"1,048,576 are read. Fix.",
            ):
                read(tmp_path / "many.npz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 300_000, f"{peak:,} bytes allocated"
