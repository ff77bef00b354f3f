"""How long `mnistnet check` takes to refuse each bad params file (tests/bad_params.py):
every case of the table and every hostile file, each in a fresh process as a user runs it.
The slowest is what `make run` can add before `dvc repro` starts."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bad_params import CASES, FILES  # noqa: E402  (tests/ is not a package)


def main() -> None:
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    files = {
        f"{case.id}-{i}": yaml.safe_dump(case.apply(committed)).encode()
        for i, case in enumerate(CASES)
    }
    files |= {name: data for name, data, _ in FILES}
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name, data in files.items():
            path = Path(folder) / "params.yaml"
            path.write_bytes(data)
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "mnistnet.apps.cli", "check", str(path)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            seconds = time.perf_counter() - started
            lines = done.stderr.splitlines()
            results.append((seconds, name, done.returncode, len(lines), max(map(len, lines))))
    bad = [r for r in results if r[2] != 1 or r[3] != 1]
    slowest = max(results)
    print(
        f"{len(results)} bad params files: every one refused with exit 1 and one line: "
        f"{not bad}; slowest {slowest[0]:.2f} s ({slowest[1]}), longest line "
        f"{max(r[4] for r in results)} characters"
    )
    for seconds, name, code, count, _ in bad:
        print(f"  {name}: exit {code}, {count} lines, {seconds:.2f} s")


if __name__ == "__main__":
    main()
