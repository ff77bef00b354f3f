"""How long `mnistnet predict` takes for 1,000 PNG files beyond its start-up.

Writes 1,000 28×28 test digits as 200×200 dark-on-light PNGs (real MNIST from
data/processed when `make run` has made it, else random strokes), then times the command on
one file and on all of them: the difference is the cost of reading, normalizing and
classifying 999 more images in one batch. It also times one .npy file holding the same
1,000 28×28 digits, which skips decoding and normalizing: the model load and one forward pass.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
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
        command = [sys.executable, "-m", "mnistnet.cli", "predict", "--model", str(MODEL)]
        one = timed([*command, paths[0]])
        many = timed([*command, *paths])
        array = timed([*command, str(batch)])
    print(f"predict, 1 PNG file:           {one:.3f} s (start-up: Python, imports, model load)")
    print(f"predict, 1,000 PNG files:      {many:.3f} s ({many - one:.3f} s beyond start-up)")
    print(f"predict, one .npy of 1,000:    {array:.3f} s ({array - one:.3f} s beyond start-up)")


if __name__ == "__main__":
    main()
