"""Stage `site`: the draw-a-digit page as a static folder, the trained network inside it."""

import _venv  # noqa: F401  a clear error when run outside .venv
from mnistnet.pipeline.numerics import pin

pin()  # before NumPy loads, as every stage

import argparse
from pathlib import Path

from mnistnet.pipeline.stage import log, run
from mnistnet.site.build import build_site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="model file from the train stage")
    parser.add_argument("--metrics", required=True, help="the evaluate stage's metrics.json")
    parser.add_argument("--out", required=True, help="folder for the site")
    args = parser.parse_args()

    size = build_site(Path(args.model), Path(args.metrics), Path(args.out))
    log(f"the page: {args.out}/index.html ({size:,} bytes), open it in a browser")


if __name__ == "__main__":
    run(main)
