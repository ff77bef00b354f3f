"""How long `mnistnet predict` takes for 1,000 PNG files beyond its start-up, and what the
attacks on it cost.

Writes 1,000 28×28 test digits as 200×200 dark-on-light PNGs (real MNIST from
data/processed when `make run` has made it, else random strokes), then times the command on
one file and on all of them: the difference is the cost of reading, normalizing and
classifying 999 more images in one batch. It also times one .npy file holding the same
1,000 28×28 digits, which skips decoding and normalizing: the model load and one forward pass
per image. Last, the 1,000 PNGs again with one file of each hostile kind among them (a text
bomb, a corrupt PNG, a .npy header claiming 29 GB, a 1 GB sparse ".png", a file of zeros, an
empty folder, a missing file): how many answers, how many error lines, the exit status.

Then the attacks, each in a command of its own, with its time, its time to the first answer
and its peak memory (resident set of the command and its worker processes together, sampled
every 20 ms): a folder holding a FIFO that nothing writes to (killed after 20 s if it
waits), a 1.8 MB deflated .npz that declares a 1.9 GB array, and folders of 5,000 and
20,000 tiny PNG files (28×28): how time and memory grow with the file count.

    python bench/bench_predict.py [--model PATH] [--attacks-only]
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
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
    names = [
        "text-bomb.png",
        "corrupt.png",
        "huge-header.npy",
        "a-gigabyte.png",
        "zeros.png",
        "empty-folder",
        "missing.png",
    ]
    return [str(folder / name) for name in names]


@dataclass
class Run:
    seconds: float
    first_line: float | None  # seconds to the first line of stdout; None: no line
    peak_bytes: int  # the largest resident set of the command and its children together
    lines: int
    stderr: str
    returncode: int | None  # None: killed after the time limit

    def __str__(self) -> str:
        first = "no answer" if self.first_line is None else f"first answer {self.first_line:.2f} s"
        status = "killed" if self.returncode is None else f"exit status {self.returncode}"
        return (
            f"{self.seconds:.2f} s ({first}), peak {self.peak_bytes / 2**20:,.0f} MiB, "
            f"{self.lines:,} answers, {len(self.stderr.splitlines()):,} error lines, "
            f"{status}"
        )


def watched(command: list[str], limit: float = 600) -> Run:
    """Run ``command``, reading its output as it comes and summing the resident memory of
    its process tree every 20 ms; killed after ``limit`` seconds."""
    started = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak, first, lines, stderr = 0, [None], [0], []

    def read_stdout() -> None:
        for _ in process.stdout:
            if first[0] is None:
                first[0] = time.perf_counter() - started
            lines[0] += 1

    readers = [
        threading.Thread(target=read_stdout),
        threading.Thread(target=lambda: stderr.append(process.stderr.read())),
    ]
    for reader in readers:
        reader.start()
    while process.poll() is None and time.perf_counter() - started < limit:
        total = 0
        try:
            for p in [process, *process.children(recursive=True)]:
                total += p.memory_info().rss
        except psutil.Error:  # a worker ended between the listing and the reading
            pass
        peak = max(peak, total)
        time.sleep(0.02)
    killed = process.poll() is None
    if killed:
        for p in [*process.children(recursive=True), process]:
            p.kill()
    process.wait()
    for reader in readers:
        reader.join()
    took = time.perf_counter() - started
    return Run(
        took,
        first[0],
        peak,
        lines[0],
        stderr[0].decode(errors="replace"),
        None if killed else process.returncode,
    )


def deflate_bomb(path: Path, images: int) -> None:
    """An .npz whose one deflated member inflates to ``images`` × 784 bytes of zeros.

    The deflated bytes of 16 MiB of zeros are made once and repeated: a full flush empties
    the compressor's window, so each copy stands alone. Its zip sizes tell the truth.
    """
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (images, 28, 28)}
    )
    block, size = bytes(16 * 2**20), images * 784
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = packer.compress(header.getvalue()) + packer.flush(zlib.Z_FULL_FLUSH)
    repeat = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(size, len(block))
    tail = packer.compress(bytes(rest)) + packer.flush()
    crc = zlib.crc32(header.getvalue())
    for _ in range(whole):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(bytes(rest), crc)
    stream_size = len(start) + whole * len(repeat) + len(tail)
    declared = len(header.getvalue()) + size
    name = b"x.npy"
    local = (
        struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, stream_size, declared, len(name), 0
        )
        + name
    )
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            stream_size,
            declared,
            len(name),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        + name
    )
    with open(path, "wb") as f:
        f.write(local + start)
        for _ in range(whole):
            f.write(repeat)
        f.write(tail)
        end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), f.tell(), 0)
        f.write(central + end)


def tiny_pngs(folder: Path, count: int) -> None:
    """``count`` 28×28 PNG digits (about 300 bytes each) in ``folder``."""
    folder.mkdir()
    encoded = []
    for digit in digits(100):
        buffer = io.BytesIO()
        Image.fromarray(digit).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    for i in range(count):
        (folder / f"{i:06d}.png").write_bytes(encoded[i % len(encoded)])


def attacks(command: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "fifo").mkdir()
        os.mkfifo(folder / "fifo/waits.png")
        print(f"a folder holding a FIFO:       {watched([*command, str(folder / 'fifo')], 20)}")
        deflate_bomb(folder / "bomb.npz", 2_400_000)
        size = (folder / "bomb.npz").stat().st_size
        bomb = watched([*command, str(folder / "bomb.npz")])
        print(f"a {size / 1e6:.1f} MB .npz declaring 1.9 GB:  {bomb}")
        (folder / "bomb.npz").unlink()
        for count in (5_000, 20_000):
            tiny_pngs(folder / str(count), count)
            print(
                f"a folder of {count:,} tiny PNGs:  {watched([*command, str(folder / str(count))])}"
            )


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--model", type=Path, default=MODEL, help="the model file to classify with")
    args.add_argument("--attacks-only", action="store_true", help="skip the 1,000-PNG timings")
    options = args.parse_args()
    if not options.model.exists():
        sys.exit(f"{options.model} is missing: run `make run` first")
    command = [sys.executable, "-m", "mnistnet.apps.cli", "predict", "--model", str(options.model)]
    if not options.attacks_only:
        pngs(command)
    attacks(command)


def pngs(command: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        images = digits(1000)
        for i, digit in enumerate(images):
            paths.append(str(Path(folder) / f"{i}.png"))
            Image.fromarray(255 - digit).resize((200, 200), Image.BICUBIC).save(paths[-1])
        batch = Path(folder) / "batch.npy"
        np.save(batch, images)
        one = timed([*command, paths[0]])
        many = timed([*command, *paths])
        array = timed([*command, str(batch)])
        bad = hostile(Path(folder))
        started = time.perf_counter()
        mixed = subprocess.run(
            [*command, *paths[:500], *bad, *paths[500:]], capture_output=True, text=True
        )
        took = time.perf_counter() - started
    print(f"predict, 1 PNG file:           {one:.3f} s (start-up: Python, imports, model load)")
    print(f"predict, 1,000 PNG files:      {many:.3f} s ({many - one:.3f} s beyond start-up)")
    print(f"predict, one .npy of 1,000:    {array:.3f} s ({array - one:.3f} s beyond start-up)")
    errors = mixed.stderr.splitlines()
    print(
        f"predict, 1,000 PNGs and {len(bad)} hostile files: {took:.3f} s, "
        f"{len(mixed.stdout.splitlines())} answers, {len(errors)} error lines, exit status "
        f"{mixed.returncode}, traceback: {'Traceback' in mixed.stderr}"
    )
    for line in errors:
        print(f"  {line.replace(folder, '…')[:140]}")


if __name__ == "__main__":
    main()
