"""The ``mnistnet`` command.

- ``mnistnet predict IMAGE…`` classifies your own digit images with the trained model.
- ``mnistnet serve`` serves the site stage's page (``data/site``) on 127.0.0.1, for those who
  prefer a URL to opening ``data/site/index.html``: the network runs in the page.
- ``mnistnet check [PARAMS]`` validates every section of params.yaml. ``make run`` calls it
  before ``dvc repro`` because DVC deletes a stage's outputs before running it: a typo found
  here costs nothing, the same typo found inside a stage leaves that stage's outputs to be
  restored with the commands its error names. It also checks what DVC reads before any stage
  (an empty dvc.lock, aliases in stage-packages.yaml, FIFOs in data/own-digits).
- ``mnistnet schema [--out FILE]`` prints the JSON Schema of params.yaml (editors use it).
- ``mnistnet plots-template PATH`` writes the offline HTML template for ``dvc plots show``.
- ``mnistnet digests URL`` prints the sources file for a local copy of a dataset (its file
  and content digests), for ``data/mnist-sources.yaml``.
- ``mnistnet experiments`` shows every experiment's accuracy and changed params in a table
  that fits the terminal (``dvc exp show`` cuts its cells).
- ``mnistnet report --base REV --out DIR`` writes a Markdown report of the workspace against a
  git revision (params, metrics, charts as PNGs): what CI posts on a pull request.

Each command imports only what it needs, so ``predict`` starts without matplotlib.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

from mnistnet.pipeline import numerics  # imports no NumPy
from mnistnet.pipeline.errors import ConfigError, Error, NumericsError

DEFAULT_MODEL = "data/model/model.npz"


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

    Returns 1 if the model or any file failed, or the answers could not be written, else 0;
    good files are classified either way. A file name is printed escaped (``printable``) in
    lines and as a JSON string in records, so it stays on its line whatever it holds.
    """
    from mnistnet.apps.predict import answers, load_model, record, walk
    from mnistnet.pipeline.errors import DataError, OutputError, one_line, printable

    if not apply_numerics():  # as evaluate runs, so the same probabilities
        return 1
    if hasattr(sys.stdout, "reconfigure"):  # a name's letters an ASCII terminal cannot show
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        params = load_model(model_path)
    except DataError as e:
        error(f"model: {one_line(str(e))}")
        return 1

    failed = False
    try:
        for chunk in answers(params, walk(paths)):  # as the files are read, in their order
            lines = []
            for path, answer in chunk:
                if isinstance(answer, str):
                    failed = True
                    if as_json:
                        lines.append(json.dumps({"file": path, "error": answer}))
                    error(f"{printable(path)}: {one_line(answer)}")
                    continue
                digits, probs = answer  # (n, 3) each
                for index, (d, p) in enumerate(zip(digits, probs, strict=True)):
                    where = index if len(digits) > 1 else None
                    lines.append(answer_line(path, where, record(d, p), as_json))
            write_stdout("".join(line + "\n" for line in lines))
    except OutputError as e:
        error(str(e))
        discard_stdout()
        return 1
    return 1 if failed else 0


def answer_line(path: str, index: int | None, record: dict, as_json: bool) -> str:
    """One image's answer: ``name[index]: digit (probability)  top 3: …``, or its JSON
    record; ``index`` is None for a file of one image."""
    from mnistnet.pipeline.errors import printable

    if as_json:
        return json.dumps({"file": path, "index": index, **record})
    name = printable(path) + ("" if index is None else f"[{index}]")
    top = ", ".join(f"{t['digit']} {t['probability']:.1%}" for t in record["top"])
    return f"{name}: {record['digit']} ({record['probability']:.1%})  top 3: {top}"


def write_stdout(text: str) -> None:
    """Write ``text`` to standard output, all of it, and flush it. A reader that went away
    stays a ``BrokenPipeError`` (``main`` stops quietly); any other failure to write (a full
    disk, a device error) is an ``OutputError`` that says so.

    The bytes go out in a loop until every one is taken: with ``PYTHONUNBUFFERED`` set,
    ``sys.stdout`` hands a long text to the raw file in one ``write(2)`` and silently drops
    what that call did not take (a pipe takes 64 KiB when its reader is slow or leaves).
    """
    from mnistnet.pipeline.storage import unwritable

    out = sys.stdout
    try:
        if not hasattr(out, "buffer"):  # a stand-in for stdout (a test's capture)
            out.write(text)
            return
        out.flush()
        data = memoryview(text.encode(out.encoding, out.errors))
        while data:
            data = data[out.buffer.write(data) :]
        out.buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise unwritable("standard output", e) from e


def discard_stdout() -> None:
    """Point standard output at /dev/null, so what is still buffered for it cannot fail
    again when Python flushes it at exit (a second report, and exit status 120)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def check(params_path: str) -> int:
    """Validate every section, and what spans two, and the own-digits folder beside the
    params file; one line per problem; the exit status."""
    from mnistnet.apps.params import SECTIONS, check

    _, problems = check(params_path)
    problems += dvc_input_problems(os.path.dirname(params_path) or ".")
    for problem in problems:
        error(problem)
    if not problems:
        print(f"{params_path}: all {len(SECTIONS)} sections valid")
    return 1 if problems else 0


OWN_DIGITS = "data/own-digits"  # the robustness stage's own variant, hashed by DVC


def dvc_input_problems(root: str) -> list[str]:
    """What in the files DVC reads before any stage runs would hang or break every dvc
    command: an empty dvc.lock (DVC rewrites it in place, so Ctrl-C at "Updating lock file"
    can leave 0 bytes), a stage-packages.yaml with YAML aliases (a 549-byte alias bomb
    expands without end), and the own-digits folder's contents."""
    from mnistnet.pipeline.config import read_params

    problems = []
    lock = os.path.join(root, "dvc.lock")
    if os.path.isfile(lock) and os.path.getsize(lock) == 0:
        problems.append(
            f"{lock}: empty, as a dvc command interrupted while it rewrote the file leaves it; "
            f"every dvc command fails on it. Restore it: git checkout -- dvc.lock"
        )
    packages = os.path.join(root, "stage-packages.yaml")
    if os.path.isfile(packages):
        try:
            read_params(packages, "package versions file")
        except ConfigError as e:
            problems.append(str(e))
    return problems + own_digits_problems(os.path.join(root, OWN_DIGITS))


def own_digits_problems(folder: str) -> list[str]:
    """What in ``folder`` DVC cannot hash: it hashes a dependency before any stage runs, so a
    FIFO or a link to a device there hangs every dvc command, and a name that is not UTF-8
    fails them all without naming the file. Found by name and type, nothing is read."""
    from mnistnet.pipeline.errors import printable

    problems = []
    for root, folders, files in os.walk(folder):
        for name in sorted(folders + files):
            path = os.path.join(root, name)
            shown = printable(path)
            if not name.isprintable():  # a byte that is not UTF-8 is a lone surrogate
                problems.append(f"{shown}: a file name that is not printable UTF-8; rename it")
            elif not (os.path.isfile(path) or os.path.isdir(path)):
                problems.append(f"{shown}: not a regular file (DVC would wait on it); remove it")
    return problems


def schema(out: str | None, markdown: bool) -> int:
    """Print the JSON Schema of params.yaml (or docs/parameters.md's table), or write it."""
    from mnistnet.apps.params import json_schema, markdown_table
    from mnistnet.pipeline.storage import write_text

    if markdown:
        write_stdout(markdown_table())
    elif out is None:
        write_stdout(json_schema())
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


def serve(site: str, port: int) -> int:
    """Serve the folder ``site`` on 127.0.0.1 until Ctrl-C: the standard library's static
    file server, for viewing on this machine only (it is not hardened for a network)."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    if not os.path.isfile(os.path.join(site, "index.html")):
        error(f"{site}/index.html: no site there. Build it with: dvc repro site")
        return 1
    handler = functools.partial(SimpleHTTPRequestHandler, directory=site)
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as e:
        error(f"cannot listen on 127.0.0.1:{port} ({e.strerror}); try another --port")
        return 1
    with server:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        print(f"serving {site} at {url} (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


# The commands built on a trained model, each in a module of apps/ that a project of your own
# may delete (docs/start-your-own.md): --help lists one only while its modules are there.
HELP = {
    "predict": "classify digit images (PNG, JPEG, .npy, .npz)",
    "experiments": "every experiment's accuracy and changed params, fitting the terminal",
    "report": "Markdown report of the workspace against a git revision, with charts",
}


def present(module: str) -> bool:
    return importlib.util.find_spec(f"mnistnet.apps.{module}") is not None


def parser() -> argparse.ArgumentParser:
    """The command line: every subcommand, its options and their defaults."""
    from mnistnet import __version__

    top = argparse.ArgumentParser(prog="mnistnet", description="MNIST from scratch, with DVC")
    top.add_argument("--version", action="version", version=f"mnistnet {__version__}")
    commands = top.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        defaults = argparse.ArgumentDefaultsHelpFormatter  # --help shows every default
        return commands.add_parser(name, help=help, description=help, formatter_class=defaults)

    def app(name: str, *modules: str) -> argparse.ArgumentParser:
        """A command built on a trained model: listed while its modules are there."""
        if all(map(present, modules)):
            return command(name, HELP[name])
        return argparse.ArgumentParser()  # its options go nowhere

    p = app("predict", "predict")
    p.add_argument(
        "images",
        nargs="+",
        help="image files (PNG, JPEG), arrays of 28x28 images (.npy, .npz), or folders of them",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="model file")
    p.add_argument("--json", action="store_true", help="one JSON record per image")
    p = command("check", "validate params.yaml before a run")
    p.add_argument("params", nargs="?", default="params.yaml", help="the params file to validate")
    p = command("serve", "the draw-a-digit page (data/site) on 127.0.0.1, for local viewing")
    p.add_argument("--site", default="data/site", help="the site stage's folder")
    p.add_argument("--port", type=port_number, default=8000, help="port; 0 = any free one")
    p = command("schema", "the JSON Schema of params.yaml, for editors")
    p.add_argument("--out", help="write it to this file (e.g. params.schema.json)")
    p.add_argument("--markdown", action="store_true", help="print docs/parameters.md's table")
    p = command("plots-template", "write the offline HTML template for dvc plots show")
    p.add_argument("path", help="where to write it, e.g. .dvc/offline-plots.html")
    p = command("digests", "the sources file for a local copy of MNIST or a 28x28 dataset like it")
    p.add_argument("url", help="a Keras-style .npz, a folder of the four IDX .gz files, …")
    p = app("experiments", "experiments", "report")
    p.add_argument("--robustness", action="store_true", help="add the robustness variants")
    p.add_argument(
        "--commits", type=int, default=1, metavar="N", help="the last N commits' experiments"
    )
    p = app("report", "report")
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
    if args.command == "experiments":
        return experiments(args.robustness, args.commits)
    if args.command == "digests":
        return digests(args.url)
    if args.command == "serve":
        return serve(args.site, args.port)
    from mnistnet.apps.plots_html import write_offline_template

    write_offline_template(args.path)
    print(f"wrote {args.path}")
    return 0


def report(base: str, out: str, charts_url: str | None) -> int:
    from mnistnet.apps.report import report as write_report

    print(f"wrote {write_report(base, out, charts_url=charts_url)}")
    return 0


def digests(url: str) -> int:
    import tempfile
    from pathlib import Path

    from mnistnet.data.download import describe

    with tempfile.TemporaryDirectory(prefix="mnistnet-digests-") as work:
        write_stdout(describe(url, Path(work)))
    return 0


def experiments(robustness: bool, commits: int) -> int:
    from mnistnet.apps.experiments import show

    write_stdout(show(robustness, commits) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    numerics.pin()  # before NumPy loads: the same numbers as the stages compute
    args = parser().parse_args(argv)
    try:
        return run(args)
    except Error as e:  # a problem the code named, with its fix: one line, no traceback
        error(str(e))
        return 1
    except BrokenPipeError:
        # The reader went away (`mnistnet predict … | head -1`): stop quietly, as Unix tools
        # do.
        discard_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it


if __name__ == "__main__":
    sys.exit(main())
