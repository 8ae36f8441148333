"""What every target wants of the local backend, and which of its starts wait for capacity.

``controller.backends.local.LocalProcessBackend`` records the latest scale call of each
target here (``want``) and, on every scale call and whenever capacity frees, asks
``grants`` which instances may start now; it starts them itself. What is not granted is
deferred: counted per target (the ``kubelambda_instance_starts_deferred`` gauge, a log
line when it grows) until a later pass grants it or a scale call with fewer replicas
cancels it. The arithmetic is ``local_capacity.plan``; this module keeps the state
around it (since when each target is short, for the FIFO) and reports the budget's use.
No I/O and no clock reads: ``now`` is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from controller.backends import local_capacity
from controller.metrics import ControllerMetrics
from kubelambda.models import FunctionVersion, Target

__all__ = ["Admission", "Running", "Want"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Want:
    """The latest scale call of a target, and since when it has been short of it."""

    version: FunctionVersion
    replicas: int
    concurrency: int
    provisioned: int
    per_start: int = 1
    since: float | None = None


@dataclass(frozen=True, slots=True)
class Running:
    """A target's instances alive now (starting or ready), ``provisioned`` of them warm,
    and ``room`` for more in the agents that host them (``LocalProcessBackend``)."""

    instances: int
    provisioned: int
    room: int = 0


class Admission:
    def __init__(
        self, budget: local_capacity.Budget, *, metrics: ControllerMetrics | None = None
    ) -> None:
        self.budget = budget
        self._metrics = metrics
        self._wants: dict[Target, Want] = {}
        self._deferred: dict[Target, int] = {}

    def want(
        self,
        version: FunctionVersion,
        *,
        replicas: int,
        concurrency: int,
        provisioned: int,
        per_start: int = 1,
    ) -> None:
        """Record the latest call for ``version``'s target: fewer replicas than before
        cancel deferred starts, and a target short already keeps its place. An agent
        started for it hosts up to ``per_start`` of its instances (not provisioned)."""
        previous = self._wants.get(version.target)
        since = previous.since if previous is not None else None
        self._wants[version.target] = Want(
            version, replicas, concurrency, provisioned, per_start, since
        )

    def forget(self, target: Target) -> None:
        self._wants.pop(target, None)
        self._set_deferred(target, 0)

    def deferred(self) -> Collection[Target]:
        """The targets with starts deferred now."""
        return self._deferred.keys()

    def grants(
        self,
        usage: local_capacity.Usage,
        running: Mapping[Target, Running],
        *,
        now: float,
        backing_off: Callable[[Target], bool],
    ) -> list[tuple[Want, int]]:
        """The starts the budget admits now, each with its target's want, oldest want
        first; what is left over is recorded as deferred."""
        shorts: list[local_capacity.Want[Target]] = []
        for target, want in self._wants.items():
            alive = running.get(target, Running(0, 0))
            missing = want.replicas - alive.instances
            if missing <= 0:
                want.since = None
                self._set_deferred(target, 0)
                continue
            if want.since is None:
                want.since = now
            if backing_off(target):
                # Waiting out a failure, not capacity: it holds no place in the queue.
                self._set_deferred(target, 0)
                continue
            shorts.append(
                local_capacity.Want(
                    key=target,
                    memory_mb=want.version.memory_size,
                    missing=missing,
                    since=want.since,
                    provisioned=max(0, want.provisioned - alive.provisioned),
                    concurrency=want.concurrency,
                    per_start=want.per_start,
                    room=alive.room,
                )
            )
        granted = local_capacity.plan(self.budget, usage, shorts)
        for short in shorts:
            self._set_deferred(short.key, short.missing - granted.get(short.key, 0))
        ordered = sorted(shorts, key=lambda s: s.since)
        return [(self._wants[s.key], granted[s.key]) for s in ordered if s.key in granted]

    def report(self, usage: local_capacity.Usage) -> None:
        """Show the budget and what ``usage`` takes of it."""
        if self._metrics is None:
            return
        budget = self.budget
        self._metrics.capacity(
            limits={
                "memory_megabytes": budget.memory_mb,
                "starting_instances": budget.max_starting,
                "processes": budget.max_processes,
            },
            in_use={
                "memory_megabytes": usage.memory_mb,
                "starting_instances": usage.starting,
                "processes": usage.processes,
            },
        )

    def _set_deferred(self, target: Target, count: int) -> None:
        before = self._deferred.get(target, 0)
        if count == before:
            return
        if count:
            self._deferred[target] = count
        else:
            del self._deferred[target]
        if count > before:
            logger.info(
                "instance starts deferred namespace=%s function=%s version=%s deferred=%d "
                "reason=host-capacity",
                target.namespace,
                target.function_name,
                target.version,
                count,
            )
        if self._metrics is not None:
            self._metrics.deferred_count(target, count)
