"""The IDX reader: valid files round-trip; malformed headers are errors, never big allocations."""

import gzip
import io

import numpy as np
import pytest

from conftest import idx_bytes
from mnistnet.data.idx import read_idx, read_idx_file
from mnistnet.pipeline.errors import DataError


def test_round_trip_images_and_labels(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    labels = np.array([3, 7], np.uint8)
    np.testing.assert_array_equal(read_idx(io.BytesIO(idx_bytes(images))), images)
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx_file(path), labels)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "magic number missing"),
        (b"\x01\x00\x08\x01" + b"\0" * 8, "not an IDX file"),
        (b"\0\0\x0d\x01\0\0\0\x01" + b"\0" * 4, "type code 0x0d"),
        (b"\0\0\x08\x00", "claims 0 dimensions"),
        (b"\0\0\x08\x09", "claims 9 dimensions"),
        (b"\0\0\x08\x03\0\0\0\x02", "truncated IDX header"),
        (b"\0\0\x08\x01\0\0\0\x05abc", "header promises 5 bytes of data, file has 3"),
        (b"\0\0\x08\x01\0\0\0\x02abc", "trailing bytes"),
        # 2^32-1 squared: a header that would ask for exabytes is refused before reading
        (b"\0\0\x08\x02\xff\xff\xff\xff\xff\xff\xff\xff", "refusing to read it"),
    ],
)
def test_malformed_headers(data, message):
    with pytest.raises(DataError, match=message):
        read_idx(io.BytesIO(data), "f")


def test_corrupt_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 4), np.uint8)))[:-6])
    with pytest.raises(DataError, match="x-idx3-ubyte.gz"):
        read_idx_file(path)
