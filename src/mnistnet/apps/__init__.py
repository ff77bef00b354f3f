"""The ``mnistnet`` command: predict, check, experiments, report and the rest.

Stages never import from here.
"""
