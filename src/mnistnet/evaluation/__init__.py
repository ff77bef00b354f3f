"""Judging a trained network: test metrics, the per-epoch log (DVCLive), and figures."""
