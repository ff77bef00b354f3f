"""The `mnistnet` command itself: version, help that shows every default, a problem told in
one line, and a reader that goes away (`| head -1`) ending it quietly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from mnistnet import __version__
from mnistnet.apps.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"mnistnet {__version__}\n"


def test_serve_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for default in ("data/site", "8000"):
        assert f"(default: {default})" in help_text


def test_every_command_tells_a_problem_in_one_line_and_exits_1(tmp_path, capsys):
    unwritable = tmp_path / "a-file" / "schema.json"  # its folder is a file
    (tmp_path / "a-file").write_text("")
    assert main(["schema", "--out", str(unwritable)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {unwritable}: could not write it (") and err.count("\n") == 1
    assert err.endswith("Nothing was replaced; fix the cause and rerun.\n")
    assert main(["digests", str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing'}: no such file or folder\n"


@pytest.mark.parametrize("args", [["schema"], ["schema", "--markdown"]])
def test_a_full_disk_on_standard_output_is_one_line(args):
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "mnistnet.apps.cli", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert done.returncode == 1
    assert done.stderr == (
        "error: standard output: could not write it (No space left on device). "
        "Free some disk space and rerun.\n"
    )


def test_check_names_what_in_the_own_digits_folder_would_hang_or_break_dvc(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    three = tmp_path / "data/own-digits/3"
    three.mkdir(parents=True)
    os.mkfifo(three / "photo.png")
    (three / "zero.png").symlink_to("/dev/zero")
    (three / os.fsdecode(b"scan\xff.png")).write_bytes(b"")
    assert main(["check", str(tmp_path / "params.yaml")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"error: {three}/photo.png: not a regular file (DVC would wait on it); remove it",
        f"error: {three}/scan\\xff.png: a file name that is not printable UTF-8; rename it",
        f"error: {three}/zero.png: not a regular file (DVC would wait on it); remove it",
    ]


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_check_refuses_an_alias_bomb_in_the_package_versions_dvc_reads(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "stage-packages.yaml").write_text(BOMB)  # ~550 bytes, 9**9 items expanded
    assert main(["check", str(tmp_path / "params.yaml")]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {tmp_path}/stage-packages.yaml: invalid YAML, line 2: an alias")


@pytest.mark.cli
def test_an_empty_dvc_lock_is_named_with_the_command_that_restores_it(finished_project):
    project = finished_project
    (project.root / "dvc.lock").write_text("")  # Ctrl-C while DVC rewrote it
    assert project.dvc("status", check=False).returncode != 0  # every dvc command fails
    checked = subprocess.run(
        [sys.executable, "-m", "mnistnet.apps.cli", "check", "params.yaml"],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 1
    assert checked.stderr.splitlines()[-1].endswith("Restore it: git checkout -- dvc.lock")
    project.git("checkout", "--", "dvc.lock")
    assert "up to date" in project.dvc("status").stdout


@pytest.mark.cli
def test_in_a_dvc_project_check_finds_what_would_hang_dvc_before_it_runs(finished_project):
    """What `make run` does first: `mnistnet check` names a FIFO among the own digits and an
    alias bomb in stage-packages.yaml, each of which hangs every dvc command (DVC reads them
    before any stage runs); once they are gone, dvc runs as before."""
    project = finished_project
    cli = [sys.executable, "-m", "mnistnet.apps.cli", "check", "params.yaml"]
    packages = project.root / "stage-packages.yaml"
    committed = packages.read_text()
    os.mkfifo(project.root / "data/own-digits/3/photo.png")
    packages.write_text(BOMB)
    done = subprocess.run(cli, cwd=project.root, env=project.env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "data/own-digits/3/photo.png: not a regular file" in done.stderr
    assert "stage-packages.yaml: invalid YAML, line 2: an alias" in done.stderr
    (project.root / "data/own-digits/3/photo.png").unlink()
    packages.write_text(committed)
    done = subprocess.run(cli, cwd=project.root, env=project.env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "up to date" in project.dvc("status").stdout
