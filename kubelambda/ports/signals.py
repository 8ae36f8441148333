"""How the invoke path tells the autoscaler what it sees, without deciding scale itself.

Each gateway (a replica in Kubernetes mode, the one process embedded) reports its own
in-flight and held counts per target under its ``reporter`` id; the autoscaler sums the
latest report of every reporter. A poke asks for a decision now instead of at the next
tick, because a request is being held for capacity.
"""

from __future__ import annotations

from typing import Protocol

from kubelambda.models import Target

__all__ = ["ScaleSignals"]


class ScaleSignals(Protocol):
    def report(self, reporter: str, target: Target, *, in_flight: int, waiting: int) -> None:
        """``reporter``'s current in-flight and held (waiting for capacity) counts."""
        ...

    def poke(self, target: Target) -> None:
        """A request is waiting for capacity: decide now instead of at the next tick."""
        ...
