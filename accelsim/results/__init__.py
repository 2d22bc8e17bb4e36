"""Results: per-layer records and the results folder they are written to (one generation, locked)."""
