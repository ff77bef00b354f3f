"""How long `mnistnet predict` takes for 1,000 PNG files beyond its start-up.

Writes 1,000 28×28 test digits as 200×200 dark-on-light PNGs (real MNIST from
data/processed when `make run` has made it, else random strokes), then times the command on
one file and on all of them: the difference is the cost of reading, normalizing and
classifying 999 more images in one batch. It also times one .npy file holding the same
1,000 28×28 digits, which skips decoding and normalizing: the model load and one forward pass
per image. Last, the 1,000 PNGs again with one file of each hostile kind among them (a text
bomb, a corrupt PNG, a .npy header claiming 29 GB, a 1 GB sparse ".png", a file of zeros, an
empty folder, a missing file): how many answers, how many error lines, the exit status.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "data/model/model.npz"


def digits(n: int) -> np.ndarray:
    test = ROOT / "data/processed/test.npz"
    if test.exists():
        with np.load(test) as f:
            return (f["x"][:n].reshape(-1, 28, 28) * 255).round().astype(np.uint8)
    rng = np.random.default_rng(0)
    images = np.zeros((n, 28, 28), np.uint8)
    for image in images:
        r = rng.integers(6, 22)
        image[r : r + 3, 6:22] = 255
        image[6:22, r : r + 3] = 255
    return images


def timed(command: list[str]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - started)
    return best


def hostile(folder: Path) -> list[str]:
    """One file of each kind `predict` must survive, in ``folder``; their paths."""
    buffer = io.BytesIO()
    Image.new("L", (40, 40), 255).save(buffer, format="PNG")
    png = buffer.getvalue()
    text = b"Comment\0\0" + zlib.compress(b"\0" * 20_000_000, 9)  # inflates to 20 MB
    chunk = (
        struct.pack(">I", len(text))
        + b"zTXt"
        + text
        + struct.pack(">I", zlib.crc32(b"zTXt" + text))
    )
    at = png.index(b"IDAT") - 4
    (folder / "text-bomb.png").write_bytes(png[:at] + chunk + png[at:])
    (folder / "corrupt.png").write_bytes(png[: at + 12] + bytes(20) + png[at + 32 :])
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (60000, 60000), }\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    (folder / "huge-header.npy").write_bytes(npy + bytes(100))
    with open(folder / "a-gigabyte.png", "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(2**30)
    with open(folder / "zeros.png", "wb") as f:
        f.truncate(2**30)
    (folder / "empty-folder").mkdir()
    names = ["text-bomb.png", "corrupt.png", "huge-header.npy", "a-gigabyte.png", "zeros.png",
             "empty-folder", "missing.png"]  # fmt: skip
    return [str(folder / name) for name in names]


def main() -> None:
    if not MODEL.exists():
        sys.exit(f"{MODEL} is missing: run `make run` first")
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        images = digits(1000)
        for i, digit in enumerate(images):
            paths.append(str(Path(folder) / f"{i}.png"))
            Image.fromarray(255 - digit).resize((200, 200), Image.BICUBIC).save(paths[-1])
        batch = Path(folder) / "batch.npy"
        np.save(batch, images)
        command = [sys.executable, "-m", "mnistnet.apps.cli", "predict", "--model", str(MODEL)]
        one = timed([*command, paths[0]])
        many = timed([*command, *paths])
        array = timed([*command, str(batch)])
        bad = hostile(Path(folder))
        started = time.perf_counter()
        mixed = subprocess.run([*command, *paths[:500], *bad, *paths[500:]],
                               capture_output=True, text=True)  # fmt: skip
        took = time.perf_counter() - started
    print(f"predict, 1 PNG file:           {one:.3f} s (start-up: Python, imports, model load)")
    print(f"predict, 1,000 PNG files:      {many:.3f} s ({many - one:.3f} s beyond start-up)")
    print(f"predict, one .npy of 1,000:    {array:.3f} s ({array - one:.3f} s beyond start-up)")
    errors = mixed.stderr.splitlines()
    print(f"predict, 1,000 PNGs and {len(bad)} hostile files: {took:.3f} s, "
          f"{len(mixed.stdout.splitlines())} answers, {len(errors)} error lines, exit status "
          f"{mixed.returncode}, traceback: {'Traceback' in mixed.stderr}")  # fmt: skip
    for line in errors:
        print(f"  {line.replace(folder, '…')[:140]}")


if __name__ == "__main__":
    main()
