"""`make docs-check`: run every console block of the README and the docs pages, in order, on a
fresh clone, and stop at the first command that fails or prints other text than the page.

A console block's lines that start with `$ ` are commands (a trailing `\\` continues one);
the lines after a command, up to the next, are what it printed. Each printed line without a
digit must appear in the command's real output (spaces collapsed); lines with digits
(accuracies, times, hashes, sizes) are what the run measured and are not compared, nor are
a line `…` (output left out) and a table's `|---|` rule (its width follows the names in it).
A block right after `<!-- docs-check: skip: REASON -->` is not run, and the check says why.
Commands run with bash in the clone's root, or where a `cd DIR` line earlier in their block
moved, with .venv/bin first on PATH (the README's first command is `make run`, which creates
it); `origin` is a bare copy in the scratch folder ($WORK/upstream.git), so nothing is pushed
here.

`--log FILE` writes every command and all it printed to FILE, as it runs: the text to paste
when a page's output is regenerated.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "README.md",
    "docs/experiments.md",
    "docs/sharing.md",
    "docs/parameters.md",
    "docs/predict-and-serve.md",
    "docs/reproducibility.md",
    "docs/recipes.md",
    "docs/ci.md",
    "docs/failures.md",
    "docs/layout.md",
    "docs/start-your-own.md",
]
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


RULE = re.compile(r"^[|:\- ]+$")  # a Markdown table's rule: |---|:--|


def compared(line: str) -> bool:
    """Whether a printed line must appear in the real output (see the module's docstring)."""
    return line.strip() not in ("", "…") and not re.search(r"\d", line) and not RULE.match(line)


def normal(text: str) -> str:
    return " ".join(text.split())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, help="write each command and its output here")
    args = parser.parse_args()
    log = args.log.open("w") if args.log else None
    with tempfile.TemporaryDirectory(prefix="mnistnet-docs-") as work:
        print(f"clone: {work}/clone", flush=True)
        clone = Path(work) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        # what the clone's `origin` is: a bare copy in the scratch folder, never this repository
        origin = Path(work) / "upstream.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(ROOT), str(origin)], check=True)
        subprocess.run(["git", "remote", "set-url", "origin", str(origin)], cwd=clone, check=True)
        env = {
            **os.environ,
            "PATH": f"{clone}/.venv/bin:{os.environ['PATH']}",
            "DVC_NO_ANALYTICS": "1",
            "COLUMNS": "100",
            "WORK": work,
        }
        ran = skipped = 0
        for page in PAGES:
            for match in BLOCK.finditer((clone / page).read_text()):
                if match.group(1):
                    print(f"skip {page}: {match.group(2)}")
                    skipped += 1
                    continue
                cwd = clone  # each block starts in the clone's root, and a `cd` lasts to its end
                for command, printed in commands(match.group(3)):
                    print(f"$ {command}", flush=True)
                    if re.fullmatch(r"cd \S+", command):
                        cwd = (cwd / command[3:]).resolve(strict=True)
                        continue
                    status, text = run(command, printed, cwd, env)
                    if log:
                        log.write(f"## {page}\n$ {command}\n{text}")
                        log.flush()
                    missing = [p for p in printed if compared(p) and normal(p) not in normal(text)]
                    if status not in (0, *expected_status(printed)) or missing:
                        tail = text[-3000:]
                        print(f"{page}: `{command}` exited {status}; missing {missing[:3]}\n{tail}")
                        return 1
                    ran += 1
        print(f"{ran} commands ran as the pages show; {skipped} blocks skipped")
    return 0


def run(command: str, printed: list[str], cwd: Path, env: dict) -> tuple[int, str]:
    """Run ``command``; its exit status and all it printed. A server (its page shows
    "Ctrl-C") gets Ctrl-C once it has printed what the page shows, or after a minute."""
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=ctrl_c_works,
        )
        if any("Ctrl-C" in line for line in printed):
            shown = [p for p in printed if p.strip()]
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                out.seek(0)
                text = out.read()
                lines = [line for line in text.splitlines() if line.strip()]
                if len(lines) >= len(shown) and all(
                    normal(p) in normal(text) for p in shown if compared(p)
                ):
                    break
                time.sleep(0.2)
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
                out.seek(0)
                return 0, out.read()  # stopped as a person stops it
        process.wait()
        out.seek(0)
        return process.returncode, out.read()


def ctrl_c_works() -> None:
    """In the child: Ctrl-C stops it, even when this check runs in the background (which
    ignores SIGINT, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def expected_status(printed: list[str]) -> tuple[int, ...]:
    """A block may show that its command fails: an `error:` line or `ERROR:` means exit 1."""
    return (1, 2, 255) if any(p.startswith(("error:", "ERROR:")) for p in printed) else ()


if __name__ == "__main__":
    sys.exit(main())
