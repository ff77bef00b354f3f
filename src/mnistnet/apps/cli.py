"""The ``mnistnet`` command.

- ``mnistnet predict IMAGE…`` classifies your own digit images with the trained model.
- ``mnistnet serve`` serves a local page: draw a digit and watch the model read it.
- ``mnistnet check [PARAMS]`` validates every section of params.yaml. ``make run`` calls it
  before ``dvc repro`` because DVC deletes a stage's outputs before running it: a typo found
  here costs nothing, the same typo found inside a stage leaves that stage's outputs to be
  restored with ``dvc checkout``.
- ``mnistnet schema [--out FILE]`` prints the JSON Schema of params.yaml (editors use it).
- ``mnistnet plots-template PATH`` writes the offline HTML template for ``dvc plots show``.
- ``mnistnet report --base REV --out DIR`` writes a Markdown report of the workspace against a
  git revision (params, metrics, charts as PNGs): what CI posts on a pull request.

Each command imports only what it needs, so ``predict`` starts without matplotlib.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from mnistnet.pipeline import numerics  # imports no NumPy
from mnistnet.pipeline.errors import NumericsError

DEFAULT_MODEL = "data/model/model.npz"
DEFAULT_METRICS = "data/eval/metrics.json"


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def apply_numerics() -> bool:
    """Check the pinned numerics after NumPy loads; print its lines; False on a mismatch."""
    try:
        for line in numerics.apply():
            print(line, file=sys.stderr)
    except NumericsError as e:
        error(str(e))
        return False
    return True


def predict(paths: list[str], model_path: str, as_json: bool) -> int:
    """Classify every image in ``paths``; one line (or JSON record) per image.

    Returns 1 if the model or any file failed, else 0; good files are classified either way.
    """
    import numpy as np

    from mnistnet.apps.predict import classify, expand_folders, load_many
    from mnistnet.nn.checkpoint import load_model
    from mnistnet.pipeline.errors import DataError

    if not apply_numerics():  # as evaluate runs, so the same probabilities
        return 1
    try:
        params, _ = load_model(model_path)
    except DataError as e:
        error(f"model: {e}")
        return 1

    paths = expand_folders(paths)
    loaded = load_many(paths)  # per path: images (n, 784), or the error message
    good = [x for x in loaded if not isinstance(x, str)]
    records = iter(classify(params, np.concatenate(good)) if good else [])  # one forward pass
    for path, item in zip(paths, loaded, strict=True):
        if isinstance(item, str):
            if as_json:
                print(json.dumps({"file": path, "error": item}))
            error(f"{path}: {item}")
            continue
        for index in range(len(item)):
            record = next(records)
            name = path if len(item) == 1 else f"{path}[{index}]"
            if as_json:
                where = {"file": path, "index": index if len(item) > 1 else None}
                print(json.dumps({**where, **record}))
            else:
                top = ", ".join(f"{t['digit']} {t['probability']:.1%}" for t in record["top"])
                print(f"{name}: {record['digit']} ({record['probability']:.1%})  top 3: {top}")
    return 1 if len(good) < len(loaded) else 0


def check(params_path: str) -> int:
    """Validate every section, and what spans two; one line per problem; the exit status."""
    from mnistnet.apps.params import SECTIONS, check

    _, problems = check(params_path)
    for problem in problems:
        error(problem)
    if not problems:
        print(f"{params_path}: all {len(SECTIONS)} sections valid")
    return 1 if problems else 0


def schema(out: str | None, markdown: bool) -> int:
    """Print the JSON Schema of params.yaml (or the README's table), or write it to ``out``."""
    from mnistnet.apps.params import json_schema, markdown_table
    from mnistnet.pipeline.storage import write_text

    if markdown:
        print(markdown_table(), end="")
    elif out is None:
        print(json_schema(), end="")
    else:
        write_text(out, json_schema())
        print(f"wrote {out}")
    return 0


def port_number(text: str) -> int:
    """``--port``: a TCP port, 0 to 65,535 (0: any free one). The OS would wrap a larger one."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 0 to 65535 (0: any free)")
    return port


def host_name(text: str) -> str:
    """``--host``: an address or name to bind, never empty (waitress would take "" for all)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty: give an address such as 127.0.0.1 or 0.0.0.0")
    return text.strip()


def parser() -> argparse.ArgumentParser:
    """The command line: every subcommand, its options and their defaults."""
    from mnistnet import __version__

    top = argparse.ArgumentParser(prog="mnistnet", description="MNIST from scratch, with DVC")
    top.add_argument("--version", action="version", version=f"mnistnet {__version__}")
    commands = top.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        defaults = argparse.ArgumentDefaultsHelpFormatter  # --help shows every default
        return commands.add_parser(name, help=help, description=help, formatter_class=defaults)

    p = command("predict", "classify digit images (PNG, JPEG, .npy, .npz)")
    p.add_argument(
        "images", nargs="+",
        help="image files (PNG, JPEG), arrays of 28x28 images (.npy, .npz), or folders of them",
    )  # fmt: skip
    p.add_argument("--model", default=DEFAULT_MODEL, help="model file")
    p.add_argument("--json", action="store_true", help="one JSON record per image")
    p = command("check", "validate params.yaml before a run")
    p.add_argument("params", nargs="?", default="params.yaml", help="the params file to validate")
    p = command("serve", "a local page: draw a digit, watch the model read it")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model file")
    p.add_argument("--metrics", default=DEFAULT_METRICS, help="test metrics shown on the page")
    p.add_argument("--host", type=host_name, default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=port_number, default=8000, help="port; 0 = any free one")
    p.add_argument("--quiet", action="store_true", help="no line per request")
    p = command("schema", "the JSON Schema of params.yaml, for editors")
    p.add_argument("--out", help="write it to this file (e.g. params.schema.json)")
    p.add_argument("--markdown", action="store_true", help="print the README's table instead")
    p = command("plots-template", "write the offline HTML template for dvc plots show")
    p.add_argument("path", help="where to write it, e.g. .dvc/offline-plots.html")
    p = command("report", "Markdown report of the workspace against a git revision, with charts")
    p.add_argument("--base", required=True, help="the revision to compare with, e.g. main")
    p.add_argument("--out", required=True, help="folder for report.md and the chart PNGs")
    p.add_argument("--charts-url", help="link the charts here instead of embedding the PNGs")
    return top


def run(args: argparse.Namespace) -> int:
    if args.command == "predict":
        return predict(args.images, args.model, args.json)
    if args.command == "check":
        return check(args.params)
    if args.command == "schema":
        return schema(args.out, args.markdown)
    if args.command == "report":
        return report(args.base, args.out, args.charts_url)
    if args.command == "serve":
        from mnistnet.apps.serve import serve

        if not apply_numerics():  # as evaluate and predict run
            return 1
        return serve(args.model, args.metrics, args.host, args.port, args.quiet)
    from mnistnet.evaluation.plots_html import write_offline_template

    write_offline_template(args.path)
    print(f"wrote {args.path}")
    return 0


def report(base: str, out: str, charts_url: str | None) -> int:
    from mnistnet.apps.report import report as write_report
    from mnistnet.pipeline.errors import Error

    try:
        path = write_report(base, out, charts_url=charts_url)
    except Error as e:
        error(str(e))
        return 1
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    numerics.pin()  # before NumPy loads: the same numbers as the stages compute
    args = parser().parse_args(argv)
    try:
        return run(args)
    except BrokenPipeError:
        # The reader went away (`mnistnet predict … | head -1`): stop quietly, as Unix tools
        # do. Point stdout at /dev/null so Python's flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it


if __name__ == "__main__":
    sys.exit(main())
