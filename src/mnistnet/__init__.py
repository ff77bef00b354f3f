"""A two-layer MNIST classifier written from scratch in NumPy, run as a DVC pipeline.

The scripts under ``stages/`` only parse paths, read their section of ``params.yaml`` and
call into this package. Its folders, in reading order:

- ``nn/``          the network and how it learns: read this first
  - ``model``      the network: forward pass, softmax cross-entropy, backward pass
  - ``optim``      SGD, momentum and Adam updates, learning-rate schedules
  - ``train``      the training loop: ``train``, ``step``, ``evaluate``
  - ``config``     the ``train`` params section, memory planning, progress lines
  - ``batches``    the shuffled mini-batches each epoch shows: originals or pool copies, moved
  - ``streams``    one random generator per purpose (initial weights, shuffle, augmentation)
  - ``checkpoint`` saving and loading trained networks (``.npz``, no pickle)
- ``data/``        the data steps
  - ``mnist``      the shape of MNIST: image side, pixel count, class count
  - ``idx``        the IDX binary format MNIST was published in
  - ``download``   fetching MNIST from an ordered list of sources, verified by content digests
  - ``preprocess`` flatten, scale, one-hot, validation split
  - ``augment``    distorted copies of the training images (affine and elastic warps)
  - ``images``     reading a digit photo or scan the way MNIST was made (untrusted input)
- ``evaluation/``  judging a trained network
  - ``metrics``    test-set scores, per-class reports, confusion and mistake lists
  - ``robustness`` variants of the test set (shifted, rotated, …, your own digits)
  - ``history``    the per-epoch training log, written with DVCLive and read back
  - ``plots``      the PNG figures of the plot stage
- ``apps/``        what is built on a trained model; no stage imports these
  - ``cli``        the ``mnistnet`` command (``serve``: the site folder on 127.0.0.1)
  - ``params``     the whole params file: ``mnistnet check``, the JSON Schema, the table of keys
  - ``experiments`` ``mnistnet experiments``: every experiment in a table that fits the terminal
  - ``predict``    reading, normalizing and classifying your own digit images
  - ``plots_html`` ``mnistnet plots-template``: the offline HTML template for ``dvc plots show``
  - ``report``     ``mnistnet report``: a revision against another, as Markdown and PNG charts
- ``site/``        the draw-a-digit page, the network running in it (page files beside)
  - ``build``      the static folder: the page, its scripts, the weights and the model's facts
- ``pipeline/``    what every stage shares
  - ``config``     params sections as typed models, and whether a plan fits in memory
  - ``errors``     the failures the project expects, one class each
  - ``numerics``   pins OpenBLAS and NumPy's CPU dispatch: the same bytes on every AVX2 CPU
  - ``stage``      a stage's entry point: progress lines, errors, all-or-nothing outputs
  - ``storage``    atomic, byte-deterministic file output and array loading

Importing the package changes nothing; each entry point (a stage script, the ``mnistnet``
command) calls ``numerics.pin()`` first.
"""

__version__ = "0.1.0"
