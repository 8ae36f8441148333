"""Concurrency-based autoscaling: the pure decider, catalog-to-spec builders, and the loop."""
