"""The host's capacity budget for local instances, and which deferred starts it admits.

Pure arithmetic: ``LocalProcessBackend`` (``controller.backends.local``) reads the host
once (``local_host``), builds a ``Budget`` from it and the platform's settings, and on
every scale call and every time capacity frees asks ``plan`` how many of the instances
it still misses may start now. What ``plan`` does not grant stays deferred in the
backend, and the requests for it wait in the gateway's activator.

Three limits, as a 2-core host taught us (64 instances of a concurrency-1 function are
128 Python processes, and every one of them slows the start of the others):

- memory: the ``MemorySize`` of every instance alive (starting, ready or draining) sums
  to at most ``memory_share`` of the host's memory (the lower of MemTotal and our
  cgroup's limit);
- starts: at most ``max_starting`` instances are starting at once (default one a core);
- processes: at most ``processes_per_core`` x cores processes of instances and spare
  agents. An instance runs its agent and one runtime per unit of its concurrency (one
  of concurrency 16 is 17 processes, as 16 invocations can run in it at once), a spare
  agent counts two (itself and its pre-started runtime) but is not planned for: a start
  takes a spare, and the backend stops those that no longer fit. Counting instances let a
  function of concurrency 16 start six (102 processes) for 64 callers on 2 cores, which
  served fewer invocations a second than two do with the other callers waiting in the
  activator. An instance larger than the whole budget counts as the whole budget: it
  runs, alone.

An agent hosting several environments of a function (``local``) counts itself and the
runtimes of every environment it hosts; an environment placed in an agent with room costs
its memory and its runtimes (one per unit of its concurrency), and no start.

Worked example, 2 cores, 4,096 MB, share 0.5, 20 a core: 2,048 MB, 2 starting, 40
processes. With 10 instances of concurrency 1 and 128 MB ready (1,280 MB, 20 processes)
and none starting, a want of 20 more gets ``min(20, 2 starting, (40 - 20) // 2 = 10 by
processes, (2,048 - 1,280) // 128 = 6 by memory) = 2``; a want of concurrency 16 gets
``(40 - 20) // 17 = 1``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["SPARE_PROCESSES", "Budget", "HostResources", "Limits", "Usage", "Want", "plan"]

K = TypeVar("K", bound=Hashable)

#: What a spare agent takes of ``Budget.max_processes``: itself and its pre-started runtime.
SPARE_PROCESSES = 2


@dataclass(frozen=True, slots=True)
class HostResources:
    """What this host (or the container the platform runs in) has."""

    memory_mb: int
    cores: int


@dataclass(frozen=True, slots=True)
class Limits:
    """The settable shares of the host: ``starting_at_once`` 0 means one a core."""

    memory_share: float = 0.5
    starting_at_once: int = 0
    processes_per_core: int = 20


@dataclass(frozen=True, slots=True)
class Budget:
    memory_mb: int
    max_starting: int
    max_processes: int

    @classmethod
    def for_host(cls, host: HostResources, limits: Limits) -> Budget:
        cores = max(1, host.cores)
        return cls(
            memory_mb=int(host.memory_mb * limits.memory_share),
            max_starting=limits.starting_at_once or cores,
            max_processes=limits.processes_per_core * cores,
        )

    def fits_at_all(self, memory_mb: int) -> bool:
        """Whether one instance of ``memory_mb`` could ever run here, all else stopped."""
        return memory_mb <= self.memory_mb and self.max_processes > 0 and self.max_starting > 0

    def processes_of(self, concurrency: int, environments: int = 1) -> int:
        """What one instance of ``concurrency`` takes of ``max_processes``: its agent and
        a runtime per unit of concurrency of each of the ``environments`` it hosts, or
        the whole budget if that is less."""
        return min(1 + max(1, concurrency) * max(1, environments), self.max_processes)


@dataclass(frozen=True, slots=True)
class Usage:
    """What is taken now: the ``memory_mb`` of the instances, ``starting`` instances not
    ready yet, and the ``processes`` of the instances (draining ones included, each
    counted as ``Budget.processes_of`` its concurrency) and of the spare agents."""

    memory_mb: int = 0
    starting: int = 0
    processes: int = 0


@dataclass(frozen=True, slots=True)
class Want(Generic[K]):
    """Instances of one target that should run and do not: ``missing`` in all, the
    first ``provisioned`` of them for provisioned concurrency, short since ``since``,
    each of ``concurrency``."""

    key: K
    memory_mb: int
    missing: int
    since: float
    provisioned: int = 0
    concurrency: int = 1
    #: Execution environments one agent started for the rest (not provisioned) may host.
    per_start: int = 1
    #: Environments the target's agents alive now may still take, without a start.
    room: int = 0


def plan(budget: Budget, usage: Usage, wants: Sequence[Want[K]]) -> dict[K, int]:
    """How many instances of each want may start now, by key (wants granted none are left out).

    Provisioned instances go first, then the rest, each group oldest want first. The
    order is strict: once a want cannot start all it misses, nobody behind it starts,
    so a large function is not starved by a stream of small ones (the idle instances
    the autoscaler reclaims under pressure make its room).
    """
    free_starting = budget.max_starting - usage.starting
    free_processes = budget.max_processes - usage.processes
    free_memory = budget.memory_mb - usage.memory_mb
    by_age = sorted(wants, key=lambda w: w.since)
    parts = [(w, min(w.provisioned, w.missing), False) for w in by_age] + [
        (w, w.missing - min(w.provisioned, w.missing), w.per_start > 1) for w in by_age
    ]
    grants: dict[K, int] = {}
    for want, count, hosted in parts:
        room = want.room if hosted else 0
        fit = 0
        while fit < count:
            # An environment placed in an agent with room costs its runtimes; any other
            # starts an agent (hosting, it has room for more after this one).
            starts = room == 0
            processes = budget.processes_of(want.concurrency) if starts else want.concurrency
            if free_memory < want.memory_mb or free_processes < processes or free_starting < starts:
                break
            free_memory -= want.memory_mb
            free_processes -= processes
            free_starting -= starts
            room = (want.per_start - 1 if hosted else 0) if starts else room - 1
            fit += 1
        if fit:
            grants[want.key] = grants.get(want.key, 0) + fit
        if fit < count:
            break
    return grants
