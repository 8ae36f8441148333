"""The scale-signal batch a sender posts and a receiver reads, and its bearer token.

A batch carries one reporter's counts per target since its last batch: the current
in-flight and held counts, and the peaks between the two batches (a request that starts
and ends between two posts must still count), plus the targets it poked. The token is
derived from the platform's instance key, which every platform process holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubelambda import instance_tokens
from kubelambda.models import Target

__all__ = ["PATH", "Batch", "Counts", "decode", "encode", "token"]

PATH = "/kubelambda/signals"


@dataclass(frozen=True, slots=True)
class Counts:
    in_flight: int
    waiting: int
    peak_in_flight: int
    peak_demand: int


@dataclass(frozen=True, slots=True)
class Batch:
    reporter: str
    counts: dict[Target, Counts]
    pokes: frozenset[Target]


def token(key: bytes) -> str:
    """The bearer token of signal batches."""
    return instance_tokens.derive(key, "scale-signals")


def encode(batch: Batch) -> bytes:
    counts = [
        {
            **_target(target),
            "inFlight": c.in_flight,
            "waiting": c.waiting,
            "peakInFlight": c.peak_in_flight,
            "peakDemand": c.peak_demand,
        }
        for target, c in batch.counts.items()
    ]
    pokes = [_target(target) for target in batch.pokes]
    body = {"reporter": batch.reporter, "counts": counts, "pokes": pokes}
    return json.dumps(body, separators=(",", ":")).encode()


def decode(body: bytes) -> Batch:
    """A batch from ``body``; ``ValueError`` naming what is wrong otherwise."""
    try:
        raw = json.loads(body)
        reporter = raw["reporter"]
        if not isinstance(reporter, str) or not reporter:
            raise ValueError("reporter must be a non-empty string")
        counts = {
            _read_target(entry): Counts(
                in_flight=_count(entry, "inFlight"),
                waiting=_count(entry, "waiting"),
                peak_in_flight=_count(entry, "peakInFlight"),
                peak_demand=_count(entry, "peakDemand"),
            )
            for entry in raw["counts"]
        }
        pokes = frozenset(_read_target(entry) for entry in raw["pokes"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed signal batch: {exc!r}") from exc
    return Batch(reporter, counts, pokes)


def _target(target: Target) -> dict[str, str]:
    return {
        "namespace": target.namespace,
        "function": target.function_name,
        "version": target.version,
    }


def _read_target(entry: dict[str, Any]) -> Target:
    parts = (entry["namespace"], entry["function"], entry["version"])
    if not all(isinstance(part, str) and part for part in parts):
        raise ValueError(f"a target needs namespace, function and version: {entry!r}")
    return Target(*parts)


def _count(entry: dict[str, Any], name: str) -> int:
    value = entry[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a count: {value!r}")
    return value
