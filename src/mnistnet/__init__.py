"""A two-layer MNIST classifier written from scratch in NumPy, run as a DVC pipeline.

The package holds all logic; the scripts under ``stages/`` only parse paths, read their
section of ``params.yaml`` and call into it. Module map:

- ``config``     typed, validated params sections (one frozen dataclass each)
- ``storage``    atomic, byte-deterministic file output and validated array loading
- ``idx``        the IDX binary format MNIST was published in
- ``download``   fetching MNIST from an ordered list of sources, verified by content digests
- ``preprocess`` flatten, scale, one-hot, validation split
- ``model``      the network math (pure NumPy, no I/O)
- ``optim``      SGD, momentum and Adam updates, learning-rate schedules
- ``train``      the mini-batch training loop
"""

__version__ = "0.1.0"
