"""What is built on a trained model: the ``mnistnet`` command, predict, serve, report.

Stages never import from here.
"""
