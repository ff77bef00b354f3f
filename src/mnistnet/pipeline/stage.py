"""What every stage script shares: progress to stderr, and failures that read as sentences.

``run(main)`` calls a stage's ``main`` and turns the project's own failures (the classes in
``errors``) into one ``error: …`` line each and exit status 1. Any other exception is a bug in
this project: it keeps its traceback, followed by a line that says so. SIGTERM is handled like
Ctrl-C. Before ``main``, the pinned numerics are checked (``numerics.apply``), and so are the
package versions the outputs depend on (``check_packages``). ``main`` runs
inside ``storage.all_or_nothing()``, so a stage that fails or is interrupted leaves no
half-written file and replaces none of its outputs: they are all renamed into place together
when ``main`` returns.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import os
import signal
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterator

from mnistnet.pipeline import errors, numerics
from mnistnet.pipeline.config import read_params
from mnistnet.pipeline.storage import all_or_nothing

BUG = (
    "error: this is a bug in mnistnet, not a problem with your data or params. Please report "
    "it with the traceback above; no output was written or replaced."
)


WIDTH = 80  # columns: a long line (a list of files) wraps, its later lines indented


def log(message: str, wrap: bool = True) -> None:
    """Print a progress line to stderr, unbuffered (DVC shows it as the stage runs), wrapped
    at ``WIDTH`` columns (a path is never broken). An error line stays one line (``wrap``
    False): one problem, one line, to read or to grep."""
    if wrap and len(message) > WIDTH:
        indent = message[: len(message) - len(message.lstrip())]
        message = textwrap.fill(
            message.lstrip(),
            WIDTH,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    print(message, file=sys.stderr, flush=True)


PACKAGES = "stage-packages.yaml"  # beside dvc.yaml, where DVC runs the stages


def check_packages(path: str = PACKAGES) -> None:
    """Raise ``ConfigError`` unless every package ``path`` records is installed at that
    version: DVC records the file's versions with the outputs (and serves them to teammates
    from the run-cache), so outputs made with another NumPy or Pillow would be filed under the
    wrong ones. Skipped without the file (a stage run by hand elsewhere) and in native numerics
    mode, whose outputs differ from the committed ones anyway."""
    if numerics.STATE.mode == "native" or not os.path.isfile(path):
        return
    wrong = []
    for name, recorded in read_params(path, "package versions file").items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "none"
        if installed != str(recorded):
            wrong.append(f"{name} {installed} (recorded: {recorded})")
    if wrong:
        raise errors.ConfigError(
            f"{path}: this Python ({sys.executable}) has {', '.join(wrong)}, so DVC would "
            f"record the wrong versions with the outputs. Install the locked ones (make setup), "
            f"or set {numerics.OPT_OUT}=native to run anyway."
        )


def restore_hint() -> None:
    """Under ``dvc repro``, which deletes a stage's outputs before running it, say what brings
    the committed ones back: ``dvc checkout`` for those in DVC's cache, ``git checkout`` for
    those kept in git (``cache: false`` in dvc.yaml), which ``dvc checkout`` leaves alone."""
    stage = os.environ.get("DVC_STAGE")
    if not stage:
        return
    name, _, item = stage.partition("@")
    try:
        spec = read_params("dvc.yaml", "pipeline file")["stages"][name]
    except (errors.ConfigError, KeyError, TypeError):
        spec = {}
    in_git = [
        path.replace("${item.variant}", item)
        for kind in ("outs", "metrics", "plots")
        for out in spec.get(kind) or []
        if isinstance(out, dict)
        for path, options in out.items()
        if (options or {}).get("cache") is False
    ]
    commands = [f"dvc checkout --force {stage}"]
    if in_git:
        commands.append(f"git checkout -- {' '.join(in_git)}")
    log(
        f"dvc repro removed the stage's previous outputs before it ran: "
        f"{' && '.join(commands)} brings back the committed ones",
        wrap=False,  # a command to copy
    )


def _proc_stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command's name (state first, then the parent's
    PID, …, the start time at index 19); None for a process that has ended, zombies too."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in (b"Z", b"X") else fields


def _dvc_process() -> tuple[int, bytes] | None:
    """The ``dvc`` process this stage runs under, as (PID, start time): the nearest of its
    parent and grandparent (DVC runs the command through ``$SHELL -c``) whose command line
    names dvc. None outside DVC, or where /proc cannot tell."""
    pid = os.getppid()
    for _ in range(2):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                words = f.read().split(b"\0")
        except OSError:
            return None
        fields = _proc_stat(pid)
        if fields is None:
            return None
        if any(w == b"dvc" or w.endswith(b"/dvc") for w in words[:3]):  # dvc, python -m dvc
            return pid, fields[19]  # the start time: a reused PID is another process
        pid = int(fields[1])
    return None


def die_with_dvc() -> None:
    """End this stage (as SIGTERM does: nothing written) within a second of the ``dvc`` that
    started it ending: a ``dvc repro`` killed with SIGKILL cannot stop its stages itself, and an
    orphaned one would go on writing outputs that a new ``dvc repro`` is writing too."""
    dvc = _dvc_process() if "DVC_STAGE" in os.environ else None
    if dvc is None:
        return

    def watch() -> None:
        while (fields := _proc_stat(dvc[0])) is not None and fields[19] == dvc[1]:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()


@contextlib.contextmanager
def only_run() -> Iterator[None]:
    """Hold this stage's lock in its DVC project (``.dvc/tmp/mnistnet-STAGE.lock``): a second
    run of the same stage at the same time (an orphan of a killed ``dvc repro`` beside a new
    one) is refused in one line instead of writing the same outputs."""
    # the stage's own project: DVC runs it there (a queued experiment in a temporary copy,
    # whose DVC_ROOT names the project it was queued from)
    stage = os.environ.get("DVC_STAGE")
    if not stage or not os.path.isdir(".dvc"):
        yield
        return
    os.makedirs(os.path.join(".dvc", "tmp"), exist_ok=True)
    path = os.path.join(".dvc", "tmp", f"mnistnet-{stage}.lock")
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise errors.Error(
                f"stage {stage} is already running (PID {lock.read().strip() or '?'}), on the "
                f"same outputs: wait for it to end, or stop it (kill PID), then rerun"
            ) from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; exit 1 on a failure or a bug, 130 when interrupted."""
    signal.signal(signal.SIGTERM, _interrupt)
    outputs = None
    try:
        for line in numerics.apply():
            log(line)
        check_packages()
        die_with_dvc()
        with only_run(), all_or_nothing() as outputs:
            main()
        log("saved " + ", ".join(str(path) for _, path in outputs.moves))
    except KeyboardInterrupt:
        if outputs is not None and outputs.committed:
            log("interrupted after all outputs were written")
        else:
            log("interrupted: no output was written or replaced")
            restore_hint()
        sys.exit(130)
    except errors.Error as e:
        for line in str(e).splitlines():  # a ConfigError holds one line per problem
            log(f"error: {line}", wrap=False)
        restore_hint()
        sys.exit(1)
    except Exception:
        traceback.print_exc()
        log(BUG, wrap=False)
        sys.exit(1)
