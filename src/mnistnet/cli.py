"""The ``mnistnet`` command.

- ``mnistnet check [PARAMS]`` validates every section of params.yaml.
- ``mnistnet plots-template PATH`` writes the offline HTML template for ``dvc plots show``.

``make run`` calls ``check`` before ``dvc repro`` because DVC deletes a stage's outputs before
running it: a typo found here costs nothing, the same typo found inside a stage leaves that
stage's outputs to be restored with ``dvc checkout``.
"""

from __future__ import annotations

import argparse
import sys

from mnistnet.config import ConfigError, load_section, read_params
from mnistnet.download import DownloadConfig
from mnistnet.plots import PlotConfig
from mnistnet.plots_html import write_offline_template
from mnistnet.preprocess import PreprocessConfig
from mnistnet.train import TrainConfig

SECTIONS = {
    "download": DownloadConfig,
    "preprocess": PreprocessConfig,
    "train": TrainConfig,
    "plot": PlotConfig,
}


def check(params_path: str) -> int:
    """Validate every section; print one line per problem; return the exit status."""
    try:
        extra = sorted(set(read_params(params_path)) - set(SECTIONS))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    problems = (
        [f"{params_path}: unknown section(s) {extra}; known: {sorted(SECTIONS)}"] if extra else []
    )
    for name, cls in SECTIONS.items():
        try:
            load_section(params_path, name, cls)
        except ConfigError as e:
            problems.append(str(e))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{params_path}: all {len(SECTIONS)} sections valid")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mnistnet", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="validate params.yaml before a run")
    check_parser.add_argument("params", nargs="?", default="params.yaml")
    template_parser = commands.add_parser(
        "plots-template", help="write the offline HTML template for `dvc plots show`"
    )
    template_parser.add_argument("path", help="where to write it, e.g. .dvc/offline-plots.html")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.params)
    if args.command == "plots-template":
        write_offline_template(args.path)
        print(f"wrote {args.path}")
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
