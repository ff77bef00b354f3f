"""Stage `download`: fetch raw MNIST from the first source in the sources file that verifies."""

import _venv  # noqa: F401  a clear error when run outside .venv
from mnistnet.pipeline.numerics import pin

pin()  # before NumPy loads: the same bytes on every AVX2 x86-64 CPU (pipeline/numerics.py)

import argparse
import tempfile
from pathlib import Path

from mnistnet.data.download import DownloadConfig, fetch_mnist, load_sources
from mnistnet.pipeline.config import load_section
from mnistnet.pipeline.stage import log, run
from mnistnet.pipeline.storage import save_npz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--sources", required=True, help="where MNIST comes from (YAML)")
    parser.add_argument("--out", required=True, help="raw arrays (.npz) to write")
    args = parser.parse_args()

    cfg = load_section(args.params, "download", DownloadConfig)
    known = load_sources(args.sources)
    with tempfile.TemporaryDirectory(prefix="mnist-download-") as work:
        arrays = fetch_mnist(known, cfg, Path(work), log)
    save_npz(args.out, arrays)
    log(f"{len(arrays['x_train'])} train and {len(arrays['x_test'])} test images")


if __name__ == "__main__":
    run(main)
