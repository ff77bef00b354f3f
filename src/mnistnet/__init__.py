"""A two-layer MNIST classifier written from scratch in NumPy, run as a DVC pipeline.

The scripts under ``stages/`` parse paths, read their section of ``params.yaml`` and call into
this package: ``nn/`` (the network and how it learns: read it first), ``data/``,
``evaluation/``, ``site/`` (the draw-a-digit page), ``apps/`` (the ``mnistnet`` command) and
``pipeline/`` (what every stage shares). Every module, a line each: docs/layout.md.

Importing the package changes nothing; each entry point (a stage script, the ``mnistnet``
command) calls ``numerics.pin()`` first.
"""

__version__ = "0.1.0"
