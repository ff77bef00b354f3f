"""`make docs-check`: run every console block of the README and the docs pages, in order, on a
fresh clone, and stop at the first command that fails or prints other text than the page.

A console block's lines that start with `$ ` are commands (a trailing `\\` continues one);
the lines after a command, up to the next, are what it printed. Each printed line without a
digit must appear in the command's real output (spaces collapsed); lines with digits
(accuracies, times, hashes, sizes) are what the run measured and are not compared, nor is
a line `…` (output left out). A block
right after `<!-- docs-check: skip: REASON -->` is not run, and the check says why. Commands
run with bash in the clone's root with .venv/bin first on PATH (the README's first command is
`make run`, which creates it); `origin` is
a bare copy in the scratch folder ($WORK/origin.git), so nothing is pushed here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/experiments.md", "docs/sharing.md", "docs/parameters.md",
         "docs/predict-and-serve.md", "docs/reproducibility.md", "docs/recipes.md",
         "docs/ci.md", "docs/failures.md", "docs/layout.md", "docs/start-your-own.md"]  # fmt: skip
BLOCK = re.compile(r"(<!-- docs-check: skip: (.*?) -->\s*\n)?```console\n(.*?)```", re.DOTALL)


def commands(block: str) -> list[tuple[str, list[str]]]:
    """(command, printed lines) for each `$ ` command of a console block."""
    found: list[tuple[str, list[str]]] = []
    lines = block.splitlines()
    while lines:
        line = lines.pop(0)
        if not line.startswith("$ "):
            if found:
                found[-1][1].append(line)
            continue
        command = line[2:]
        while command.endswith("\\") and lines:
            command = command[:-1] + "\n" + lines.pop(0)
        found.append((command, []))
    return found


def normal(text: str) -> str:
    return " ".join(text.split())


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mnistnet-docs-") as work:
        clone = Path(work) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        # the pages push to `origin`: a bare copy in the scratch folder, never this repository
        origin = Path(work) / "origin.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(ROOT), str(origin)], check=True)
        subprocess.run(["git", "remote", "set-url", "origin", str(origin)], cwd=clone, check=True)
        env = {**os.environ, "PATH": f"{clone}/.venv/bin:{os.environ['PATH']}",
               "DVC_NO_ANALYTICS": "1", "COLUMNS": "100", "WORK": work}  # fmt: skip
        ran = skipped = 0
        for page in PAGES:
            for match in BLOCK.finditer((clone / page).read_text()):
                if match.group(1):
                    print(f"skip {page}: {match.group(2)}")
                    skipped += 1
                    continue
                for command, printed in commands(match.group(3)):
                    print(f"$ {command}", flush=True)
                    done = subprocess.run(["bash", "-c", command], cwd=clone, env=env,
                                          capture_output=True, text=True)  # fmt: skip
                    output = normal(done.stdout + done.stderr)
                    missing = [p for p in printed if p.strip() not in ("", "…")
                               and not re.search(r"\d", p) and normal(p) not in output]  # fmt: skip
                    if done.returncode not in (0, *expected_status(printed)) or missing:
                        tail = (done.stdout + done.stderr)[-3000:]
                        print(f"{page}: `{command}` exited {done.returncode}; "
                              f"missing {missing[:3]}\n{tail}")  # fmt: skip
                        return 1
                    ran += 1
        print(f"{ran} commands ran as the pages show; {skipped} blocks skipped")
    return 0


def expected_status(printed: list[str]) -> tuple[int, ...]:
    """A block may show that its command fails: an `error:` line or `ERROR:` means exit 1."""
    return (1, 2, 255) if any(p.startswith(("error:", "ERROR:")) for p in printed) else ()


if __name__ == "__main__":
    sys.exit(main())
