"""Pinned numerics: the same bytes whatever BLAS or SIMD settings the environment carries."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnistnet.data.augment import AugmentConfig, make_pool, save_pool
from mnistnet.data.preprocess import PreprocessConfig, preprocess
from mnistnet.pipeline import numerics
from mnistnet.pipeline.storage import save_npz

ROOT = Path(__file__).resolve().parents[1]
PINNABLE = not numerics._missing_cpu_support()
needs_pin = pytest.mark.skipif(not PINNABLE, reason="this CPU cannot run the pinned kernel")


def cpu_has(flag: str) -> bool:
    try:
        return flag in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any BLAS/SIMD variable, plus ``extra``."""
    names = ("OPENBLAS_", "OMP_", "GOTO_", "NPY_", "MNISTNET_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(names)}
    return {**env, "PYTHONPATH": str(ROOT / "src"), **extra}


def test_pin_sets_the_environment_and_names_what_it_overrode(monkeypatch):
    monkeypatch.delitem(sys.modules, "numpy")  # as in a fresh process, before NumPy loads
    monkeypatch.setattr(numerics, "STATE", numerics.State())
    monkeypatch.setattr(numerics, "_missing_cpu_support", lambda: "")
    env = {"OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "8", "OPENBLAS_CORETYPE": "Haswell"}
    state = numerics.pin(env)
    assert state.mode == "pinned"
    assert env == {
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_NUM_THREADS": "1",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    }
    (note,) = state.notes  # one line, naming what the user had set to something else
    assert "OPENBLAS_NUM_THREADS=4, OMP_NUM_THREADS=8)" in note
    assert "MNISTNET_NUMERICS=native" in note


@pytest.mark.parametrize(
    ("env", "missing", "mode", "says"),
    [
        ({"MNISTNET_NUMERICS": "native"}, "", "native", "differ in the last bits"),
        ({"MNISTNET_NUMERICS": "fast"}, "", "native", "is not 'pinned' or 'native'"),
        ({}, "arm64 is not x86-64", "unpinnable", "arm64 is not x86-64"),
        ({}, "no avx2, fma", "unpinnable", "cannot run the pinned Haswell kernel (no avx2"),
    ],
)
def test_no_pin_where_asked_or_impossible_and_one_line_says_so(
    monkeypatch, env, missing, mode, says
):
    monkeypatch.delitem(sys.modules, "numpy")
    monkeypatch.setattr(numerics, "STATE", numerics.State())
    monkeypatch.setattr(numerics, "_missing_cpu_support", lambda: missing)
    before = dict(env)
    state = numerics.pin(env)
    assert state.mode == mode
    assert env == before  # the environment is left as it was
    (note,) = state.notes
    assert says in note


@pytest.mark.cli
@needs_pin
def test_a_fresh_process_runs_what_was_pinned_whatever_the_environment():
    kernel = "SkylakeX" if cpu_has("avx512f") else "Sandybridge"
    env = clean_env(OPENBLAS_CORETYPE=kernel, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="3")
    code = (
        "from mnistnet.pipeline import numerics\nnumerics.pin()\nimport numpy\n"
        "print(numerics.apply()); print(numerics.describe())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    notes, running = result.stdout.splitlines()
    assert (
        running
        == numerics.pinned_description()
        == ("openblas Haswell, 1 thread, NumPy without AVX-512 loops")
    )
    assert f"OPENBLAS_CORETYPE={kernel}, OPENBLAS_NUM_THREADS=2, OMP_NUM_THREADS=3" in notes


@pytest.mark.cli
def test_importing_changes_nothing_and_a_late_pin_says_so_in_one_line():
    """Importing the package leaves the environment alone; a pin asked for after NumPy
    loaded cannot apply, and says so."""
    code = (
        "import os, mnistnet, mnistnet.nn.model, mnistnet.apps.cli\n"
        "print(sorted(k for k in os.environ if k.startswith(('OPENBLAS', 'NPY'))))\n"
        "from mnistnet.pipeline import numerics\nnumerics.pin()\n"
        "for line in numerics.apply(): print(line)"
    )
    env = clean_env()
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    before, *notes = result.stdout.splitlines()
    assert before == "[]"
    assert len(notes) == 1 and "NumPy was loaded before numerics.pin() ran" in notes[0]


@pytest.fixture(scope="module")
def train_folder(tmp_path_factory, tiny):
    """Processed tiny data and a params file big enough for BLAS to use its threads."""
    folder = tmp_path_factory.mktemp("numerics")
    splits = preprocess(tiny, PreprocessConfig(val_size=40))
    for name, arrays in splits.items():
        save_npz(folder / "data" / f"{name}.npz", arrays)
    cfg = AugmentConfig(copies=2, elastic_alpha=30)  # the warps' float math is pinned too
    pool = make_pool(splits["train"]["x"], cfg)
    save_pool(folder / "pool.npz", pool, cfg, json.loads(str(splits["train"]["meta"])))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dtype in ("float32", "float64"):
        params["train"].update(epochs=2, batch_size=100, hidden_size=256, dtype=dtype)
        (folder / f"{dtype}.yaml").write_text(yaml.safe_dump(params))
    return folder


def train_bytes(folder: Path, dtype: str, **env: str) -> str:
    """Run the train stage in a fresh process; the sha256 of the model it wrote."""
    model = folder / f"model-{dtype}.npz"
    args = ["--params", f"{dtype}.yaml", "--data", "data", "--pool", "pool.npz"]
    args += ["--model", model.name]
    args += ["--live", "live"]
    subprocess.run(
        [sys.executable, str(ROOT / "stages/train.py"), *args],
        cwd=folder,
        env=clean_env(**env),
        capture_output=True,
        check=True,
    )
    return hashlib.sha256(model.read_bytes()).hexdigest()


ENVIRONMENTS = [
    {"OPENBLAS_NUM_THREADS": "1"},
    {"OPENBLAS_NUM_THREADS": "2"},
    {"OPENBLAS_NUM_THREADS": "4"},
    {"OMP_NUM_THREADS": "1"},
    {"OPENBLAS_CORETYPE": "Sandybridge"},
    {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"},
    {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"},
]


@pytest.mark.cli
@needs_pin
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_train_stage_bytes_do_not_depend_on_blas_or_simd_settings(train_folder, dtype):
    reference = train_bytes(train_folder, dtype)
    for env in ENVIRONMENTS:
        assert train_bytes(train_folder, dtype, **env) == reference, env


@pytest.mark.cli
@needs_pin
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to differ")
def test_without_the_pin_the_thread_count_changes_the_bytes(train_folder):
    """The control: what the pin removes is real, so the test above can fail."""
    native = {"MNISTNET_NUMERICS": "native", "OPENBLAS_CORETYPE": "Haswell"}
    one = train_bytes(train_folder, "float32", OPENBLAS_NUM_THREADS="1", **native)
    two = train_bytes(train_folder, "float32", OPENBLAS_NUM_THREADS="2", **native)
    assert one != two


@pytest.mark.cli
@needs_pin
@pytest.mark.skipif(not cpu_has("avx512f"), reason="NumPy runs AVX-512 loops only on AVX-512")
def test_without_the_pin_numpy_avx512_loops_change_float64_bytes(train_folder):
    native = {"MNISTNET_NUMERICS": "native", "OPENBLAS_CORETYPE": "Haswell"}
    avx512 = train_bytes(train_folder, "float64", **native)
    avx2 = train_bytes(train_folder, "float64", NPY_DISABLE_CPU_FEATURES="X86_V4", **native)
    assert avx512 != avx2
