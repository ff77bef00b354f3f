"""The draw-a-digit page as a static site: the trained network runs in the browser.

``build_site`` writes a folder that works opened from disk (``file://``, no server) or from
any static host such as GitHub Pages, and loads nothing from outside itself:

- ``index.html``, ``style.css``, ``app.js``: the page (drawing pad, bars, the 28×28 input);
- ``mnistnet.js``: the forward pass of ``nn/model.py`` and the normalization of
  ``data/images.py`` in plain JavaScript, as ``window.mnistnet`` (``predict``, ``normalize``);
- ``model.js``: the weights, float32 little-endian in base64 (the page reads them in a few
  milliseconds; a script, since a page opened from disk may not ``fetch`` files beside it),
  and the model's facts: its training params, test accuracy, and the md5 ``dvc.lock`` lists.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from mnistnet.nn import checkpoint
from mnistnet.nn.model import PARAM_NAMES
from mnistnet.pipeline.storage import load_npz, write_text

PAGE = ("index.html", "style.css", "mnistnet.js", "app.js")  # beside this file


def build_site(model: Path, metrics: Path, out: Path) -> int:
    """Write the site for the model file ``model`` (its test scores in the evaluate stage's
    ``metrics``) into the folder ``out``; returns its size in bytes."""
    arrays = load_npz(model, checkpoint.SCHEMA, checkpoint.FIX)  # the train stage's
    params, meta = checkpoint.from_arrays(arrays, model)
    weights = b"".join(params[name].astype("<f4").tobytes() for name in PARAM_NAMES)
    test = json.loads(metrics.read_text())["test"]
    facts = {
        "hidden_size": params["b1"].shape[0],
        "test_accuracy": test["accuracy"],
        "train": meta["train"],
        "augment": meta.get("augment"),
        "model_md5": hashlib.md5(model.read_bytes()).hexdigest(),
    }
    payload = {"facts": facts, "hidden_size": facts["hidden_size"]}
    payload["weights"] = base64.b64encode(weights).decode("ascii")
    files = {name: (Path(__file__).parent / name).read_text() for name in PAGE}
    files["model.js"] = (
        "// The trained network for mnistnet.js, written by the site stage (dvc.yaml).\n"
        f"window.MNISTNET_MODEL = {json.dumps(payload, sort_keys=True)};\n"
    )
    for name, text in files.items():
        write_text(out / name, text)
    return sum(len(text.encode()) for text in files.values())
