"""Imported first by every stage script, before anything of the project's.

`.venv/bin/dvc repro` without activating .venv runs the stages with whichever `python` comes
first on PATH, often one without this project's packages: say so in one line instead of a
ModuleNotFoundError traceback. It cannot change a stage's outputs, so dvc.yaml does not list
it among their dependencies.
"""

import importlib.util
import sys

if importlib.util.find_spec("mnistnet") is None:
    sys.exit(
        f"error: {sys.executable} does not have this project's packages. Activate its "
        f"environment first (source .venv/bin/activate), or run `make run`."
    )
