"""The stage wrapper: the project's own failures are one clear line and lose nothing; any other
exception is a bug that keeps its traceback.

Most cases run the real stage scripts in this process (``runpy``, as ``python stages/x.py``
would, minus the interpreter's start-up); a few run them as the user does, in a subprocess.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from bad_params import CASES, FILES
from conftest import ROOT, sha256_file, write_keras_npz, write_sources
from mnistnet.pipeline import stage
from mnistnet.pipeline.storage import save_npz

STAGE_ARGS = {
    "download": ["--sources", "data/mnist-sources.yaml", "--out", "data/raw/mnist.npz"],
    "preprocess": ["--raw", "data/raw/mnist.npz", "--out", "data/processed"],
    "augment": ["--train", "data/processed/train.npz", "--out", "data/augmented/pool.npz"],
    "train": [
        "--data",
        "data/processed",
        "--pool",
        "data/augmented/pool.npz",
        "--model",
        "data/model/model.npz",
        "--live",
        "data/dvclive",
    ],
    "evaluate": [
        "--model",
        "data/model/model.npz",
        "--test",
        "data/processed/test.npz",
        "--out",
        "data/eval",
    ],
    **{
        f"robustness@{variant}": [
            "--variant",
            variant,
            "--model",
            "data/model/model.npz",
            "--test",
            "data/processed/test.npz",
            "--own",
            "data/own-digits",
            "--out",
            f"data/robustness/{variant}.json",
        ]
        for variant in ("clean", "shifted", "rotated", "scaled", "elastic", "noisy", "own")
    },
    "plot": [
        "--live",
        "data/dvclive",
        "--eval",
        "data/eval",
        "--test",
        "data/processed/test.npz",
        "--train",
        "data/processed/train.npz",
        "--pool",
        "data/augmented/pool.npz",
        "--model",
        "data/model/model.npz",
        "--robustness",
        "data/robustness",
        "--variant",
        *("clean", "shifted", "rotated", "scaled", "elastic", "noisy", "own"),
        "--table",
        "data/robustness.csv",
        "--out",
        "data/plots",
    ],
}
READS_PARAMS = {
    "download",
    "preprocess",
    "augment",
    "train",
    "plot",
    *(name for name in STAGE_ARGS if name.startswith("robustness@")),
}


def stage_args(stage_name: str, params: str) -> list[str]:
    return STAGE_ARGS[stage_name] + (["--params", params] if stage_name in READS_PARAMS else [])


def run_here(folder: Path, stage_name: str, params: str = "params.yaml") -> tuple[int, str]:
    """Run ``stages/<stage_name>.py`` in this process, in ``folder``: (exit status, stderr)."""
    argv, cwd, path = sys.argv, os.getcwd(), list(sys.path)
    sigterm = signal.getsignal(signal.SIGTERM)  # stage.run installs its own handler
    err = io.StringIO()
    sys.argv = [f"{stage_name}.py", *stage_args(stage_name, params)]
    sys.path.insert(0, str(ROOT / "stages"))  # as `python stages/x.py` has it
    os.chdir(folder)
    try:
        with contextlib.redirect_stderr(err):
            script = stage_name.split("@")[0]  # robustness@clean runs stages/robustness.py
            runpy.run_path(str(ROOT / "stages" / f"{script}.py"), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv, sys.path[:] = argv, path
        os.chdir(cwd)
        signal.signal(signal.SIGTERM, sigterm)
    return code, err.getvalue()


def run_subprocess(folder: Path, stage_name: str, params: str = "params.yaml"):
    args = [sys.executable, str(ROOT / "stages" / f"{stage_name.split('@')[0]}.py")]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [*args, *stage_args(stage_name, params)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under data/, temporary files included."""
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted((folder / "data").rglob("*"))
        if p.is_file()
    }


def tiny_params(folder: Path, tiny) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    write_sources(
        folder / "data/mnist-sources.yaml", tiny, str(write_keras_npz(tiny, folder / "tiny.npz"))
    )
    params["preprocess"]["val_size"] = 40
    params["train"].update(epochs=2, batch_size=32, hidden_size=16)
    return params


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny) -> Path:
    """A folder where every stage has run once on the tiny dataset (no DVC needed)."""
    folder = tmp_path_factory.mktemp("stages")
    (folder / "params.yaml").write_text(yaml.safe_dump(tiny_params(folder, tiny)))
    shutil.copytree(ROOT / "data/own-digits", folder / "data/own-digits")
    for name in STAGE_ARGS:
        code, err = run_here(folder, name)
        assert code == 0, err
    return folder


def write_params(folder: Path, name: str, params: dict) -> str:
    (folder / name).write_text(yaml.safe_dump(params, sort_keys=False))
    return name


STAGE_CASES = [c for c in CASES if c.section in STAGE_ARGS]


@pytest.mark.parametrize("case", STAGE_CASES, ids=[c.id for c in STAGE_CASES])
def test_bad_params_fail_in_one_line_and_keep_outputs(finished, case):
    params = case.apply(yaml.safe_load((finished / "params.yaml").read_text()))
    before = snapshot(finished)
    code, err = run_here(finished, case.section, write_params(finished, "bad.yaml", params))
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith("error: ") and case.says in line
    assert snapshot(finished) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "params file not found"),
        (b"train: [unclosed\n", "invalid YAML"),
        (b"- a list\n", "expected a mapping of keys at the top level"),
        *((f[1], f[2]) for f in FILES),
    ],
)
def test_unreadable_params_files(finished, text, message):
    if text is not None:
        (finished / "broken.yaml").write_bytes(text)
    before = snapshot(finished)
    code, err = run_here(finished, "train", "broken.yaml" if text else "absent.yaml")
    assert code == 1 and message in err
    assert snapshot(finished) == before


def huge_outputs(model: Path, overflow: bool) -> None:
    """Give the model finite weights with huge outputs: logits that overflow float32
    (``overflow``), or every image's logits ±3e38, finite but 6e38 apart."""
    arrays = dict(np.load(model))
    if overflow:
        arrays["W1"] = arrays["W1"] * np.float32(10)
        arrays["W2"] = np.full_like(arrays["W2"], 3e38)  # any hidden sum over ~1.2 overflows
    else:
        arrays["W2"] = np.zeros_like(arrays["W2"])
        arrays["b2"] = np.float32(3e38) * np.resize(np.array([1, -1], np.float32), 10)
    save_npz(model, arrays)


BAD_DATA = [
    (
        "preprocess",
        "data/raw/mnist.npz",
        lambda p: p.write_bytes(p.read_bytes()[:5000]),
        "not a readable .npz file",
    ),
    (
        "preprocess",
        "data/raw/mnist.npz",
        lambda p: p.write_bytes(b"\x00\x00\x08\x03" + b"\0" * 99),
        "not a readable .npz file",
    ),
    (
        "preprocess",
        "data/raw/mnist.npz",
        lambda p: save_npz(p, {**dict(np.load(p)), "x_train": np.zeros((240, 28, 28), np.int16)}),
        "array 'x_train' is int16 with shape (240, 28, 28), expected uint8",
    ),
    (
        "train",
        "data/augmented/pool.npz",
        lambda p: save_npz(p, {**dict(np.load(p)), "pool": np.zeros((2, 200, 784))}),
        "array 'pool' is float64 with shape (2, 200, 784), expected uint8 with 3 dimensions. "
        "Rerun the augment stage",
    ),
    (
        "evaluate",
        "data/model/model.npz",
        lambda p: save_npz(p, {**dict(np.load(p)), "W1": np.zeros((784, 16), np.int32)}),
        "weights of dtype float32, int32; a model holds float32 or float64 arrays",
    ),
    (
        "evaluate",
        "data/model/model.npz",
        lambda p: huge_outputs(p, overflow=True),
        "outputs overflow to infinity on the test set",
    ),
]


@pytest.mark.parametrize(("stage_name", "relative", "how", "message"), BAD_DATA)
def test_bad_data_fails_in_one_line_and_keeps_outputs(finished, stage_name, relative, how, message):
    original = (finished / relative).read_bytes()
    how(finished / relative)
    try:
        before = snapshot(finished)
        code, err = run_here(finished, stage_name)
        assert code == 1, err
        (line,) = err.splitlines()
        assert line.startswith("error: ") and message in line
        assert snapshot(finished) == before
    finally:
        (finished / relative).write_bytes(original)


def test_a_huge_but_finite_model_still_gets_valid_json_metrics(finished):
    """Logits ±3e38 are finite float32s 6e38 apart: too far for a float32 softmax (its loss
    would be infinite), not for float64."""
    model = finished / "data/model/model.npz"
    original = model.read_bytes()
    huge_outputs(model, overflow=False)
    try:
        code, err = run_here(finished, "evaluate")
        metrics = json.loads((finished / "data/eval/metrics.json").read_text())
        assert code == 0, err
        assert metrics["test"]["loss"] == pytest.approx(3e38, rel=1e-6)  # half at 0, half at 6e38
    finally:
        model.write_bytes(original)
        assert run_here(finished, "evaluate")[0] == 0


def test_a_bug_keeps_its_traceback_and_says_it_is_one(finished, monkeypatch):
    before = snapshot(finished)

    def shape_bug(*args, **kwargs):
        return np.zeros(3) @ np.zeros(4)  # NumPy's ValueError, as a real shape bug raises

    monkeypatch.setattr("mnistnet.evaluation.metrics.evaluate_model", shape_bug)
    code, err = run_here(finished, "evaluate")
    assert code == 1
    assert "Traceback (most recent call last)" in err and "ValueError: matmul" in err
    assert err.rstrip().endswith(stage.BUG)
    assert snapshot(finished) == before


def test_disk_full_mid_write_names_the_file_and_keeps_the_previous_model(finished, monkeypatch):
    """ENOSPC while the model is being written: a clear error, the old model intact."""
    model = finished / "data/model/model.npz"
    before = model.read_bytes()
    write = zipfile._ZipWriteFile.write  # where a zip member's bytes go to the file

    def fill_disk(member, data):
        if member._zinfo.filename == "W1.npy" and len(memoryview(data)) > 1000:
            write(member, memoryview(data)[:1000])  # the first big write: part goes out
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(member, data)

    monkeypatch.setattr(zipfile._ZipWriteFile, "write", fill_disk)
    code, err = run_here(finished, "train")
    assert code == 1
    assert err.splitlines()[-1] == (
        "error: data/model/model.npz: could not write it (No space left on device). "
        "Free some disk space and rerun."
    )
    assert model.read_bytes() == before
    assert sorted(p.name for p in model.parent.iterdir()) == ["model.npz"]


# --- as the user runs them: a process of its own -------------------------------------------


@pytest.mark.cli
def test_in_its_own_process_a_bad_param_is_one_line(finished):
    params = yaml.safe_load((finished / "params.yaml").read_text())
    params["train"]["lrr"] = 0.1
    before = snapshot(finished)
    result = run_subprocess(finished, "train", write_params(finished, "bad.yaml", params))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: train.lrr: unknown key")
    assert snapshot(finished) == before


@pytest.mark.cli
def test_in_its_own_process_a_bug_keeps_its_traceback(tmp_path):
    script = tmp_path / "buggy.py"
    script.write_text(
        "import numpy as np\nfrom mnistnet.pipeline.stage import run\n"
        "run(lambda: np.ones((2, 3)) @ np.ones((2, 3)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and "matmul" in result.stderr
    assert result.stderr.rstrip().endswith(stage.BUG)


@pytest.mark.cli
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_full_on_a_real_small_filesystem(finished, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)]).returncode:
        pytest.skip("this machine does not allow mounting tmpfs")
    try:
        old = mount / "model.npz"
        old.write_bytes((finished / "data/model/model.npz").read_bytes())  # ~52 KB of 96 KB
        params = yaml.safe_load((finished / "params.yaml").read_text())
        params["train"]["hidden_size"] = 64
        write_params(finished, "wide.yaml", params)
        args = [
            sys.executable,
            str(ROOT / "stages/train.py"),
            "--params",
            "wide.yaml",
            "--data",
            "data/processed",
            "--pool",
            "data/augmented/pool.npz",
            "--model",
            str(old),
            "--live",
            str(tmp_path / "live"),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        result = subprocess.run(args, cwd=finished, capture_output=True, text=True, env=env)
        assert result.returncode == 1
        assert f"error: {old}: could not write it (No space left on device)" in result.stderr
        assert old.read_bytes() == (finished / "data/model/model.npz").read_bytes()
        assert [p.name for p in mount.iterdir()] == ["model.npz"]
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.cli
def test_a_stage_refuses_package_versions_other_than_those_it_records(tmp_path):
    """With another NumPy first on the path, DVC would record stage-packages.yaml's versions
    for outputs made with another: the stage says so in one line, before reading anything."""
    (tmp_path / "stage-packages.yaml").write_text("numpy: 0.0.1\n")
    stage = [sys.executable, str(ROOT / "stages/preprocess.py"), "--raw", "raw.npz", "--out", "o"]
    env = {k: v for k, v in os.environ.items() if k != "MNISTNET_NUMERICS"}
    done = subprocess.run(stage, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert f"has numpy {np.__version__} (recorded: 0.0.1)" in line
    assert line.endswith(
        "Install the locked ones (make setup), or set MNISTNET_NUMERICS=native to run anyway."
    )
    native = subprocess.run(  # the opt-out: results differ anyway, and it says so
        stage,
        cwd=tmp_path,
        env={**env, "MNISTNET_NUMERICS": "native"},
        capture_output=True,
        text=True,
    )
    assert "recorded" not in native.stderr and "params file not found" in native.stderr
