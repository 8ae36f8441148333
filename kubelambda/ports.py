"""The seams between kubelambda's logic and the world it runs on (ports, in ports-and-adapters).

Each port has an embedded adapter (SQLite, local processes) and, later, a Kubernetes/Kafka
one. The gateway and the controller depend on these protocols only; the launcher
(``kubelambda.embedded``) picks the adapters and wires them together.

- ``Store``: functions, versions, aliases, settings; hands out immutable ``Catalog``
  snapshots and tells subscribers when a new one is due (a watch).
- ``InstanceBackend``: runs N instances of a version and reports the ready endpoints.
- ``ScaleSignals``: how the invoke path tells the autoscaler what it sees (in-flight
  counts) and asks for capacity at once (a poke) without deciding scale itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from kubelambda.models import (
    Alias,
    FunctionSettings,
    FunctionVersion,
    ProvisionedConcurrency,
    ProvisionedStatus,
    Target,
)

__all__ = ["Catalog", "Endpoint", "InstanceBackend", "ScaleSignals", "Store"]


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything the invoke path and the autoscaler read, as one consistent snapshot.

    Keys: ``versions[Target]`` (``$LATEST`` included), ``aliases[(function, alias)]``,
    ``settings[function]``, ``provisioned[(function, qualifier)]``.
    """

    versions: Mapping[Target, FunctionVersion] = field(default_factory=dict)
    aliases: Mapping[tuple[str, str], Alias] = field(default_factory=dict)
    settings: Mapping[str, FunctionSettings] = field(default_factory=dict)
    provisioned: Mapping[tuple[str, str], ProvisionedConcurrency] = field(default_factory=dict)


class Store(Protocol):
    """Durable state. Writes are validated by the caller; the store enforces uniqueness
    and revision checks and raises ``kubelambda.errors`` types."""

    async def catalog(self) -> Catalog: ...

    def subscribe(self, listener: Callable[[Catalog], None]) -> Callable[[], None]:
        """Call ``listener`` with each new catalog after every committed change.
        Returns a function that unsubscribes."""
        ...

    async def set_provisioned_status(
        self,
        function_name: str,
        qualifier: str,
        *,
        allocated: int,
        status: ProvisionedStatus,
        reason: str = "",
    ) -> None:
        """The controller's report on a provisioned-concurrency config it reconciled."""
        ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One ready instance of a target, able to run ``concurrency`` invocations at once."""

    target: Target
    instance_id: str
    host: str
    port: int
    concurrency: int


class InstanceBackend(Protocol):
    """Runs instances. ``scale`` is declarative and idempotent; endpoints appear in
    ``endpoints`` only once ready, and leave it before their instance starts draining."""

    async def scale(self, version: FunctionVersion, *, replicas: int, concurrency: int) -> None: ...

    def endpoints(self, target: Target) -> list[Endpoint]: ...

    def subscribe(self, listener: Callable[[Target], None]) -> Callable[[], None]:
        """Call ``listener`` whenever the ready endpoints of a target change."""
        ...

    async def aclose(self) -> None: ...


class ScaleSignals(Protocol):
    """What the invoke path reports to the autoscaler: never a scale decision."""

    def report(self, target: Target, *, in_flight: int, waiting: int) -> None:
        """The current in-flight and held (waiting for capacity) counts of a target."""
        ...

    def poke(self, target: Target) -> None:
        """A request is waiting for capacity: decide now instead of at the next tick."""
        ...
