"""A ScaleSignals that records what it is told, for tests of what feeds the autoscaler."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubelambda.models import Target


@dataclass
class RecordedSignals:
    reports: list[tuple[str, Target, int, int]] = field(default_factory=list)
    pokes: list[Target] = field(default_factory=list)

    def report(self, reporter: str, target: Target, *, in_flight: int, waiting: int) -> None:
        self.reports.append((reporter, target, in_flight, waiting))

    def poke(self, target: Target) -> None:
        self.pokes.append(target)
