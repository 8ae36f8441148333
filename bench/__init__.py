"""Benchmarks: each script prints JSON and saves a PNG; ``python -m bench`` runs them all."""
