"""Capacity-aware choice of an instance, and the in-flight counts that drive it.

The activator asks the balancer for a slot on a ready endpoint and gives it back when
the invocation ends. The choice is the endpoint with spare capacity and the fewest
requests in flight (never blind round-robin: a busy instance would get every n-th
request whatever its load). Counts are per instance and per target, kept only in this
process; several gateway replicas are summed by the autoscaler, not here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TypeVar

from kubelambda.models import Target
from kubelambda.ports.endpoints import Endpoint

__all__ = ["Balancer", "least_loaded"]

_K = TypeVar("_K")


def least_loaded(
    endpoints: Iterable[Endpoint],
    in_flight: Mapping[str, int],
    exclude: Collection[str] = (),
) -> Endpoint | None:
    """The endpoint with spare capacity and the fewest in flight (first one on a tie);
    ``None`` when every endpoint not excluded is full."""
    best: Endpoint | None = None
    best_load = 0
    for endpoint in endpoints:
        if endpoint.instance_id in exclude:
            continue
        load = in_flight.get(endpoint.instance_id, 0)
        if load < endpoint.concurrency and (best is None or load < best_load):
            best, best_load = endpoint, load
    return best


class Balancer:
    """Hands out slots on endpoints and counts them back in."""

    def __init__(self) -> None:
        self._by_instance: dict[str, int] = {}
        self._by_target: dict[Target, int] = {}

    def in_flight(self, target: Target) -> int:
        return self._by_target.get(target, 0)

    def instance_in_flight(self, instance_id: str) -> int:
        return self._by_instance.get(instance_id, 0)

    def take(self, endpoints: Iterable[Endpoint], exclude: Collection[str] = ()) -> Endpoint | None:
        """Reserve a slot on the least loaded endpoint, or return ``None`` when full."""
        endpoint = least_loaded(endpoints, self._by_instance, exclude)
        if endpoint is not None:
            self._by_instance[endpoint.instance_id] = (
                self._by_instance.get(endpoint.instance_id, 0) + 1
            )
            self._by_target[endpoint.target] = self._by_target.get(endpoint.target, 0) + 1
        return endpoint

    def give_back(self, endpoint: Endpoint) -> None:
        """Return the slot ``take`` reserved. Entries at zero are dropped, so instances
        that come and go do not accumulate."""
        _decrement(self._by_instance, endpoint.instance_id)
        _decrement(self._by_target, endpoint.target)


def _decrement(counts: dict[_K, int], key: _K) -> None:
    remaining = counts.get(key, 0) - 1
    if remaining > 0:
        counts[key] = remaining
    else:
        counts.pop(key, None)
