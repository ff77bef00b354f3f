"""`--against REV` for the benchmarks: another git revision's ``src/`` in a temporary worktree."""

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def source_of(rev: str | None) -> Iterator[Path | None]:
    """The ``src/`` folder of ``rev``, checked out for the block and removed after it
    (None without a revision)."""
    if rev is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as scratch:
        tree = f"{scratch}/rev"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "-q", "--detach", tree, rev], check=True)
        try:
            yield Path(tree) / "src"
        finally:
            subprocess.run([*git, "remove", "--force", tree], check=True)
