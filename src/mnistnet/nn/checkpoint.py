"""Saving and loading trained parameters as ``.npz`` (no pickle).

The file holds ``W1`` (d, h), ``b1`` (h,), ``W2`` (h, k), ``b2`` (k,) and ``meta``, a JSON
string with the hyperparameters that built it, so the network can be rebuilt and its origin
read without the params file that trained it.
"""

from __future__ import annotations

import json
import os

import numpy as np

from mnistnet.data.mnist import PIXELS
from mnistnet.nn.model import PARAM_NAMES, Params
from mnistnet.pipeline.config import Section
from mnistnet.pipeline.errors import DataError
from mnistnet.pipeline.storage import load_npz, load_untrusted_npz, save_npz

FORMAT = "mnistnet-mlp/1"


def save_model(
    path: str | os.PathLike,
    params: Params,
    train_config: Section,
    data: dict | None = None,
    augment: dict | None = None,
) -> None:
    """Atomically write ``params``, the ``TrainConfig`` ``train_config`` that produced them,
    ``data``, the metadata of the split they were trained on (see ``preprocess.split_meta``),
    and ``augment``, the settings of the pool of distorted copies they saw (its metadata's
    ``augment``; None: no pool).
    """
    meta = {"format": FORMAT, "train": train_config.model_dump(), "data": data}
    if augment is not None:
        meta["augment"] = augment
    arrays = {name: params[name] for name in PARAM_NAMES}
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    save_npz(path, arrays)


def load_model(
    path: str | os.PathLike, input_size: int = PIXELS, trusted: bool = False
) -> tuple[Params, dict]:
    """Load a model file; returns (params, meta). Raises ``DataError`` unless its four arrays
    form a network: shapes ``(d, h), (h,), (h, k), (k,)`` with ``d == input_size``, all of
    one floating-point dtype.

    ``predict`` and ``serve`` take any model path, a file fetched with ``dvc artifacts get``
    included: it is read as untrusted input, its header checked before anything is allocated,
    its size capped. The stages pass ``trusted=True``: the train stage wrote the file and DVC
    checked its hash, so it is loaded as it is, however wide the network.
    """
    fix = "Retrain it with: dvc repro train, or pass the path of a model this project saved"
    schema = {"W1": (None, 2), "b1": (None, 1), "W2": (None, 2), "b2": (None, 1), "meta": (None, 0)}
    arrays = (load_npz if trusted else load_untrusted_npz)(path, schema, fix)
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a {FORMAT} model file. {fix}")
    W1, b1, W2, b2 = (arrays[name] for name in PARAM_NAMES)
    dtypes = {a.dtype for a in (W1, b1, W2, b2)}
    if dtypes not in ({np.dtype(np.float32)}, {np.dtype(np.float64)}):
        raise DataError(
            f"{path}: weights of dtype {', '.join(sorted(map(str, dtypes)))}; a model holds "
            f"float32 or float64 arrays, all of one dtype. {fix}"
        )
    d, h = W1.shape
    k = W2.shape[1]
    if d != input_size or b1.shape != (h,) or W2.shape[0] != h or b2.shape != (k,):
        raise DataError(
            f"{path}: layer shapes {W1.shape}, {b1.shape}, {W2.shape}, {b2.shape} do not form "
            f"a {input_size}-h-k network. {fix}"
        )
    return arrays, meta
