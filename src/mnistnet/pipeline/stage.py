"""What every stage script shares: progress to stderr, and failures that read as sentences.

``run(main)`` calls a stage's ``main`` and turns the project's own failures (the classes in
``errors``) into one ``error: …`` line each and exit status 1. Any other exception is a bug in
this project: it keeps its traceback, followed by a line that says so. SIGTERM is handled like
Ctrl-C. Before ``main``, the pinned numerics are checked (``numerics.apply``). ``main`` runs
inside ``storage.all_or_nothing()``, so a stage that fails or is interrupted leaves no
half-written file and replaces none of its outputs: they are all renamed into place together
when ``main`` returns.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable

from mnistnet.pipeline import errors, numerics
from mnistnet.pipeline.storage import all_or_nothing

BUG = (
    "error: this is a bug in mnistnet, not a problem with your data or params. Please report "
    "it with the traceback above; no output was written or replaced."
)


def log(message: str) -> None:
    """Print one progress line to stderr, unbuffered (DVC shows it as the stage runs)."""
    print(message, file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; exit 1 on a failure or a bug, 130 when interrupted."""
    signal.signal(signal.SIGTERM, _interrupt)
    outputs = None
    try:
        for line in numerics.apply():
            log(line)
        with all_or_nothing() as outputs:
            main()
        log("saved " + ", ".join(str(path) for _, path in outputs.moves))
    except KeyboardInterrupt:
        if outputs is not None and outputs.committed:
            log("interrupted after all outputs were written")
        elif "DVC_STAGE" in os.environ:  # dvc repro deleted the old outputs before the run
            log(
                "interrupted: no output was written or replaced, but dvc repro had removed "
                "the previous outputs before the stage started: `dvc checkout` restores them"
            )
        else:
            log("interrupted: no output was written or replaced")
        sys.exit(130)
    except errors.Error as e:
        for line in str(e).splitlines():  # a ConfigError holds one line per problem
            log(f"error: {line}")
        sys.exit(1)
    except Exception:
        traceback.print_exc()
        log(BUG)
        sys.exit(1)
