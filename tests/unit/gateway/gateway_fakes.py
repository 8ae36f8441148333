"""In-memory stand-ins for the ports the invoke path programs against (unit tests only)."""

from __future__ import annotations

from collections.abc import Callable

from kubelambda.models import FunctionVersion, Target
from kubelambda.ports import Endpoint

DEFAULT_TARGET = Target("f", "1")


def endpoint(instance_id: str, concurrency: int = 1, target: Target = DEFAULT_TARGET) -> Endpoint:
    return Endpoint(target, instance_id, "127.0.0.1", 1, concurrency)


class StaticBackend:
    """Endpoints set by the test; listeners told when the test changes them."""

    def __init__(self) -> None:
        self.ready: dict[Target, list[Endpoint]] = {}
        self._listeners: list[Callable[[Target], None]] = []

    async def scale(self, version: FunctionVersion, *, replicas: int, concurrency: int) -> None:
        raise AssertionError("the invoke path never scales")

    def endpoints(self, target: Target) -> list[Endpoint]:
        return list(self.ready.get(target, ()))

    def set_endpoints(self, target: Target, endpoints: list[Endpoint]) -> None:
        self.ready[target] = endpoints
        for listener in list(self._listeners):
            listener(target)

    def subscribe(self, listener: Callable[[Target], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def aclose(self) -> None:
        self._listeners.clear()


class RecordingSignals:
    def __init__(self) -> None:
        self.reports: list[tuple[Target, int, int]] = []
        self.pokes: list[Target] = []

    def report(self, target: Target, *, in_flight: int, waiting: int) -> None:
        self.reports.append((target, in_flight, waiting))

    def poke(self, target: Target) -> None:
        self.pokes.append(target)
