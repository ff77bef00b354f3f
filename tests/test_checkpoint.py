"""Model files: round trip, reproducible bytes, and clear errors for wrong files."""

import numpy as np
import pytest

from conftest import load_model, save_model
from mnistnet.nn import checkpoint, model
from mnistnet.nn.config import TrainConfig
from mnistnet.pipeline.errors import DataError
from mnistnet.pipeline.storage import save_npz


def params(h=16):
    return model.init_params(np.random.default_rng(0), 784, h, 10)


def test_round_trip_and_identical_bytes(tmp_path):
    p = params()
    save_model(tmp_path / "a.npz", p, TrainConfig(hidden_size=16))
    save_model(tmp_path / "b.npz", p, TrainConfig(hidden_size=16))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded, meta = load_model(tmp_path / "a.npz")
    assert meta["train"]["hidden_size"] == 16
    for name in model.PARAM_NAMES:
        np.testing.assert_array_equal(loaded[name], p[name])


def test_wrong_shapes_are_refused(tmp_path):
    p = params()
    arrays = checkpoint.to_arrays(p, {})
    with pytest.raises(DataError, match="do not form a 100-h-k network"):
        checkpoint.from_arrays(arrays, "m.npz", input_size=100)
    p["b1"] = np.zeros(3, np.float32)
    save_model(tmp_path / "bad.npz", p, TrainConfig())
    with pytest.raises(DataError, match=r"layer shapes .*\(3,\)"):
        load_model(tmp_path / "bad.npz")


def test_foreign_files_are_refused(tmp_path):
    save_npz(tmp_path / "raw.npz", {"x": np.zeros(2)})
    with pytest.raises(DataError, match=r"missing arrays .*Retrain it"):
        load_model(tmp_path / "raw.npz")
    arrays = dict(params())
    arrays["meta"] = np.array('{"format": "other"}')
    save_npz(tmp_path / "other.npz", arrays)
    with pytest.raises(DataError, match="not a mnistnet-mlp/1 model file"):
        load_model(tmp_path / "other.npz")


def test_weights_of_another_dtype_are_refused(tmp_path):
    """predict reads any model path: a file of integer or text weights is a clear error
    there, not a traceback from the first matrix product."""
    arrays = {name: a.astype(np.int32) for name, a in params().items()}
    arrays["meta"] = np.array('{"format": "mnistnet-mlp/1"}')
    save_npz(tmp_path / "ints.npz", arrays)
    for trusted in (False, True):
        with pytest.raises(DataError, match="weights of dtype int32; a model holds float32"):
            load_model(tmp_path / "ints.npz", trusted=trusted)


def test_the_stages_read_a_model_past_the_cap_on_files_from_outside(tmp_path, monkeypatch):
    """The train stage may write a model larger than predict's cap (a wide network); the
    stages load it as the pipeline's own file."""
    from mnistnet.data import untrusted

    save_model(tmp_path / "m.npz", params(), TrainConfig(hidden_size=16))
    size = (tmp_path / "m.npz").stat().st_size
    monkeypatch.setattr(untrusted.load_npz, "__defaults__", (size // 2,))
    with pytest.raises(DataError, match="at most"):
        load_model(tmp_path / "m.npz")
    loaded, _ = load_model(tmp_path / "m.npz", trusted=True)
    assert loaded["W1"].shape == (784, 16)
