"""What every stage shares: typed params, errors, pinned numerics, all-or-nothing outputs."""
