"""Ready endpoints of a version: what the gateway's invoke path needs from instances.

The balancer picks among ``endpoints(target)``; the activator hands held requests a slot
when subscribers hear that a target's endpoints changed. Adapters: the local-process
backend (in the same process) and, in Kubernetes mode, the version's EndpointSlices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kubelambda.models import Target

__all__ = ["UNIX_PORT", "Endpoint", "EndpointSource", "InstanceAnnouncements"]

# The port of an endpoint whose host is a Unix socket address (no TCP port is 0).
UNIX_PORT = 0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One ready instance of a target, able to run ``concurrency`` invocations at once.

    ``host`` and ``port`` are where its agent listens: an address and a TCP port, or a
    Unix socket address (embedded instances: an abstract one, named by the kernel) and
    ``UNIX_PORT``. ``token`` is the instance's invoke token, which the gateway presents
    on every invocation (``kubelambda_agent.invoke_token`` says who makes it and how it
    travels); kept out of ``repr`` so that logging an endpoint never logs it."""

    target: Target
    instance_id: str
    host: str
    port: int
    concurrency: int
    token: str = field(repr=False)


class EndpointSource(Protocol):
    def endpoints(self, target: Target) -> Sequence[Endpoint]:
        """The ready endpoints of ``target``; an instance leaves before it drains."""
        ...

    def subscribe(self, listener: Callable[[Target], None]) -> Callable[[], None]:
        """Call ``listener`` whenever the ready endpoints of a target change.
        Returns a function that unsubscribes."""
        ...


class InstanceAnnouncements(Protocol):
    """Where the gateway hands an instance's "I serve now" (Kubernetes mode: a pod's agent
    announces itself before the kubelet reports its address; see
    ``kubelambda_agent.protocol``). Untrusted input: the adapter checks ``proof``."""

    def announced(self, *, namespace: str, pod: str, ip: str, proof: str) -> None: ...
