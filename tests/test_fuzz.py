"""Hostile files: the IDX reader and the .npz/model loaders raise only DataError.

Hypothesis generates random bytes, headers claiming huge sizes, and corrupted or truncated
copies of valid files. Any other exception (or a giant allocation) fails the test. The draws
repeat from run to run (profiles in conftest.py); `make fuzz` draws 5,000 new ones per test.
"""

import io
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from conftest import idx_bytes, load_model, save_model, zip_of_one
from mnistnet.data.idx import read_idx
from mnistnet.data.untrusted import load_npz as load_untrusted_npz
from mnistnet.nn import model
from mnistnet.nn.config import TrainConfig
from mnistnet.pipeline.errors import DataError


def only_data_error(call) -> None:
    try:
        call()
    except DataError:
        pass


@given(st.binary(max_size=4096))
def test_idx_random_bytes(data):
    only_data_error(lambda: read_idx(io.BytesIO(data)))


@example(dims=[0, 1875415, 1875739, 2621923], code=0x08, payload=b"")  # found by `make fuzz`
@given(
    dims=st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=6),
    code=st.sampled_from([0x08, 0x09, 0x0D, 0x0E]),
    payload=st.binary(max_size=1024),
)
def test_idx_hostile_headers(dims, code, payload):
    header = bytes([0, 0, code, len(dims)]) + np.array(dims, ">u4").tobytes()
    only_data_error(lambda: read_idx(io.BytesIO(header + payload)))


@given(cut=st.integers(0, 200), flips=st.lists(st.tuples(st.integers(0, 199), st.integers(1, 255))))
def test_idx_truncated_and_corrupted(cut, flips):
    data = bytearray(idx_bytes(np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)))
    for position, xor in flips:
        data[position % len(data)] ^= xor
    only_data_error(lambda: read_idx(io.BytesIO(bytes(data[: len(data) - cut]))))


def valid_model_bytes() -> bytes:
    params = model.init_params(np.random.default_rng(0), 784, 4, 10)
    with tempfile.TemporaryDirectory() as folder:
        save_model(Path(folder) / "m.npz", params, TrainConfig(hidden_size=4))
        return (Path(folder) / "m.npz").read_bytes()


VALID_MODEL = valid_model_bytes()


def load_from_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.npz"
        path.write_bytes(data)
        only_data_error(lambda: load_model(path))


@given(st.binary(max_size=4096))
def test_model_loader_random_bytes(data):
    load_from_bytes(data)


@example(cut=14938, flips=[(106, 1)])  # found by CI: the header text stopped parsing as Python
@given(
    cut=st.integers(0, len(VALID_MODEL)),
    flips=st.lists(
        st.tuples(st.integers(0, len(VALID_MODEL) - 1), st.integers(1, 255)), max_size=8
    ),
)
def test_model_loader_corrupted_and_truncated(cut, flips):
    data = bytearray(VALID_MODEL)
    for position, xor in flips:
        data[position] ^= xor
    load_from_bytes(bytes(data[:cut]))


def test_npy_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path):
    import zipfile

    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 1000), }"
    npy = b"\x93NUMPY\x01\x00" + len(header + "\n").to_bytes(2, "little") + (header + "\n").encode()
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as zf:
        for name in ("W1", "b1", "W2", "b2", "meta"):
            zf.writestr(f"{name}.npy", npy + b"\0" * 64)
    try:
        load_model(tmp_path / "huge.npz")
    except DataError as e:
        assert f"header claims {100000 * 100000 * 1000 * 8} bytes of data, it holds 64" in str(e)
    else:
        raise AssertionError("an 80 TB header was accepted")


def test_zip_directory_claiming_more_than_the_file_holds_is_refused_before_allocating(tmp_path):
    """A stored member whose zip headers claim 3.9 GB in a file of a few hundred bytes."""
    claimed = 3_900_000_000
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({claimed // 4 - 32},), }}"
    npy = b"\x93NUMPY\x01\x00" + (len(header) + 1).to_bytes(2, "little") + header.encode() + b"\n"
    name = b"W1.npy"  # stored, its sizes both claimed
    lying = zip_of_one(name, npy + b"\0" * 64, 0, 0, claimed, stored=claimed)
    (tmp_path / "lying.npz").write_bytes(lying)
    try:
        load_untrusted_npz(tmp_path / "lying.npz", {"W1": (np.float32, 1)}, fix="")
    except DataError as e:
        assert f"expand to {claimed:,} bytes; at most" in str(e)  # refused by its claim
    else:
        raise AssertionError("a 3.9 GB claim was accepted")


# --- the image decoder: hostile PNG and JPEG files -------------------------------------------


def valid_images() -> list[bytes]:
    """A small drawn digit as PNG (gray, RGBA, palette, 16-bit) and as JPEG."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(canvas).line([(20, 10), (40, 30), (25, 50)], fill=0, width=6)
    out = []
    for image, fmt in [
        (canvas, "PNG"),
        (canvas.convert("RGBA"), "PNG"),
        (canvas.convert("P"), "PNG"),
        (canvas.convert("I;16"), "PNG"),
        (canvas.convert("RGB"), "JPEG"),
    ]:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        out.append(buffer.getvalue())
    return out


VALID_IMAGES = valid_images()


@given(
    which=st.integers(0, len(VALID_IMAGES) - 1),
    cut=st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 255)), max_size=8),
    insert=st.binary(max_size=64),
    at=st.integers(0, 4000),
)
def test_the_image_decoder_raises_only_data_error(which, cut, flips, insert, at):
    """Bit flips, cuts and inserted bytes anywhere in a valid PNG or JPEG: an image, or a
    DataError, never another exception (Pillow's own are many)."""
    from mnistnet.data.images import decode_image

    data = bytearray(VALID_IMAGES[which])
    for position, xor in flips:
        data[position % len(data)] ^= xor
    data[at % (len(data) + 1) : at % (len(data) + 1)] = insert
    data = bytes(data[: max(8, len(data) - cut)])
    try:
        x = decode_image(data)
    except DataError:
        return
    assert x.shape == (1, 784) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
