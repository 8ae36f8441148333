"""Thin wrappers around I/O libraries for the gateway's hot path (the HTTP pool to instances)."""
