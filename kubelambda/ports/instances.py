"""Running instances of a version: what the controller needs (scale, prepare, failures).

The autoscaler calls ``scale`` with the replica count it decided; the package settler
calls ``prepare`` before a new package is reported Active, and ``discard`` once the
code store has collected one. The gateway never sees this
port (it reads ``EndpointSource``). Adapters: local processes (embedded) and, in
Kubernetes mode, a Deployment per version.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from kubelambda.models import CodePackage, FunctionKey, FunctionVersion, Target

__all__ = [
    "BackendClosed",
    "InstanceBackend",
    "InstanceEvents",
    "PackageRejected",
    "StartFailure",
]


class BackendClosed(Exception):
    """The backend is shutting down and did not finish: nothing was decided about the
    package or instance (the next start of the process does the work again)."""


class PackageRejected(ValueError):
    """The package cannot be run (it does not unpack, say): the message becomes the
    version's state reason."""


@dataclass(frozen=True, slots=True)
class StartFailure:
    """The latest failures to start instances of a target, since it last had one ready."""

    consecutive: int
    reason: str
    retriable: bool


class InstanceBackend(Protocol):
    async def scale(
        self, version: FunctionVersion, *, replicas: int, concurrency: int, provisioned: int = 0
    ) -> None:
        """Run ``replicas`` instances of ``version``, the first ``provisioned`` of them as
        provisioned concurrency. Declarative and idempotent; returns without waiting for
        readiness."""
        ...

    async def prepare(self, package: CodePackage, *, function: FunctionKey) -> None:
        """Make ``package`` ready for ``function``'s instances to start from (whatever a
        start would otherwise do first, done while the version is still Pending). Raises
        ``PackageRejected``, or ``BackendClosed`` when a shutdown cut the work short."""
        ...

    async def discard(self, sha256_hexes: Collection[str]) -> None:
        """Forget what ``prepare`` made for packages the code store has collected."""
        ...

    def ready_instances(self, target: Target) -> int: ...

    def starts_deferred(self) -> Collection[Target]:
        """The targets with instances that wait to start for capacity this backend
        lacks now (the autoscaler then reclaims idle instances of the others)."""
        ...

    def start_failure(self, target: Target) -> StartFailure | None: ...

    async def aclose(self) -> None:
        """Stop every instance."""
        ...


class InstanceEvents(Protocol):
    """What a backend reports about its instances as they come and go (the controller's
    metrics implement it)."""

    def started(self, target: Target, *, initialization_type: str) -> None: ...

    def became_ready(self, target: Target, *, seconds: float) -> None: ...

    def ready_count(self, target: Target, count: int) -> None: ...

    def failed(self, target: Target, *, reason: str) -> None: ...

    def deferred_count(self, target: Target, count: int) -> None:
        """Instances of ``target`` waiting for capacity (not failures)."""
        ...
