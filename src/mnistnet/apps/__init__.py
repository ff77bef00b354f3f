"""What is built on a trained model: the ``mnistnet`` command, predict, report.

Stages never import from here.
"""
