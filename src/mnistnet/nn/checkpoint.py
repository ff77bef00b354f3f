"""The model file's contents: the trained parameters and what made them, as arrays.

A model file (``.npz``, no pickle) holds ``W1`` (d, h), ``b1`` (h,), ``W2`` (h, k), ``b2``
(k,) and ``meta``, a JSON string with the hyperparameters that built it, so the network can
be rebuilt and its origin read without the params file that trained it. ``to_arrays`` and
``from_arrays`` are the format; writing and reading the file is the caller's (the stages
through ``pipeline/storage.py``, ``mnistnet predict`` through ``data/untrusted.py``).
"""

from __future__ import annotations

import json

import numpy as np

from mnistnet.nn.model import PARAM_NAMES, Params
from mnistnet.pipeline.errors import DataError

FORMAT = "mnistnet-mlp/1"
SCHEMA = {"W1": (None, 2), "b1": (None, 1), "W2": (None, 2), "b2": (None, 1), "meta": (None, 0)}
FIX = "Retrain it with: dvc repro train, or pass the path of a model this project saved"


def to_arrays(params: Params, meta: dict) -> dict[str, np.ndarray]:
    """``params`` and ``meta`` (the ``train`` settings that made them, and the metadata of
    the data they saw) as the arrays of a model file."""
    arrays = {name: params[name] for name in PARAM_NAMES}
    arrays["meta"] = np.array(json.dumps({"format": FORMAT, **meta}, sort_keys=True))
    return arrays


def from_arrays(
    arrays: dict[str, np.ndarray], path: object, input_size: int | None = None
) -> tuple[Params, dict]:
    """(params, meta) from a model file's arrays (``SCHEMA``); ``DataError`` naming ``path``
    unless they form a network: shapes ``(d, h), (h,), (h, k), (k,)`` (with ``d ==
    input_size``, if given), all of one floating-point dtype."""
    arrays = dict(arrays)
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a {FORMAT} model file. {FIX}")
    W1, b1, W2, b2 = (arrays[name] for name in PARAM_NAMES)
    dtypes = {a.dtype for a in (W1, b1, W2, b2)}
    if dtypes not in ({np.dtype(np.float32)}, {np.dtype(np.float64)}):
        raise DataError(
            f"{path}: weights of dtype {', '.join(sorted(map(str, dtypes)))}; a model holds "
            f"float32 or float64 arrays, all of one dtype. {FIX}"
        )
    (d, h), k = W1.shape, W2.shape[1]
    if input_size not in (None, d) or b1.shape != (h,) or W2.shape[0] != h or b2.shape != (k,):
        raise DataError(
            f"{path}: layer shapes {W1.shape}, {b1.shape}, {W2.shape}, {b2.shape} do not form "
            f"a {input_size or 'd'}-h-k network. {FIX}"
        )
    return arrays, meta
