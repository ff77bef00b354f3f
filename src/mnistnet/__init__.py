"""A two-layer MNIST classifier written from scratch in NumPy, run as a DVC pipeline.

The package holds all logic; the scripts under ``stages/`` only parse paths, read their
section of ``params.yaml`` and call into it. Module map:

- ``numerics``   pins OpenBLAS and NumPy's CPU dispatch so results match on every x86-64 CPU
- ``mnist``      the shape of MNIST: image side, pixel count, class count
- ``errors``     the failures the project expects, one class each
- ``config``     params sections as typed models (``Section``): validation, error messages
- ``params``     the whole params file: ``mnistnet check``, the JSON Schema, the README table
- ``storage``    atomic, byte-deterministic file output and validated array loading
- ``memory``     what a plan needs in memory, what this machine has, and the check
- ``idx``        the IDX binary format MNIST was published in
- ``download``   fetching MNIST from an ordered list of sources, verified by content digests
- ``preprocess`` flatten, scale, one-hot, validation split
- ``augment``    distorted copies of the training images (affine and elastic warps)
- ``model``      the network math (pure NumPy, no I/O)
- ``streams``    one random generator per purpose (initial weights, shuffle, augmentation)
- ``optim``      SGD, momentum and Adam updates, learning-rate schedules
- ``batches``    the shuffled, augmented mini-batches each epoch shows the network
- ``train``      the mini-batch training loop
- ``history``    its per-epoch log, written with DVCLive and read back
- ``checkpoint`` saving and loading trained models (``.npz``, no pickle)
- ``metrics``    test-set scores, per-class reports, confusion and mistake lists
- ``plots``      the PNG figures of the plot stage
- ``plots_html`` the offline HTML template for ``dvc plots show``
- ``predict``    reading and normalizing your own digit images
- ``serve``      ``mnistnet serve``: the draw-a-digit page and its API (page in ``web/``)
- ``report``     ``mnistnet report``: a revision against another, as Markdown and PNG charts
- ``stage``      what every stage script shares: progress lines, errors, all-or-nothing outputs
- ``cli``        the ``mnistnet`` command

Importing the package pins the numerics (see ``numerics``) before NumPy loads.
"""

from mnistnet import numerics as _numerics

_numerics.pin()

__version__ = "0.1.0"
