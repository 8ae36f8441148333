"""In-memory stand-ins for the ports and kits the invoke path programs against (unit
tests only): endpoints the test sets, signals it reads back, an agent it scripts and a
queue that records; and ``invoke_path``, the real use case wired over them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from kubelambda_agent import protocol
from prometheus_client import CollectorRegistry

from gateway.kits.http_pool import RequestNotSent, Response
from gateway.metrics import AsyncMetrics, GatewayMetrics
from gateway.services.activator import Activator
from gateway.services.event_producer import EventProducer
from gateway.services.invoke_settings import InvokeSettings
from gateway.services.invoker import Invoker
from gateway.services.metered_invoker import MeteredInvoker
from kubelambda import errors
from kubelambda.models import Target
from kubelambda.ports.catalog import Catalog
from kubelambda.ports.endpoints import Endpoint
from kubelambda.ports.queue import Delivery, QueuedEvent, TopicMessage
from tests import factories

DEFAULT_TARGET = factories.target("f", "1")


def endpoint(
    instance_id: str, concurrency: int = 1, target: Target = DEFAULT_TARGET, port: int = 1
) -> Endpoint:
    return Endpoint(target, instance_id, "127.0.0.1", port, concurrency, token="t")


class StaticEndpoints:
    """An ``EndpointSource`` whose ready endpoints the test sets; listeners hear of it."""

    def __init__(self) -> None:
        self.ready: dict[Target, list[Endpoint]] = {}
        self._listeners: list[Callable[[Target], None]] = []

    def endpoints(self, target: Target) -> list[Endpoint]:
        return list(self.ready.get(target, ()))

    def set_endpoints(self, target: Target, endpoints: list[Endpoint]) -> None:
        self.ready[target] = endpoints
        for listener in list(self._listeners):
            listener(target)

    def subscribe(self, listener: Callable[[Target], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @property
    def listeners(self) -> int:
        return len(self._listeners)


@dataclass(frozen=True, slots=True)
class Report:
    reporter: str
    target: Target
    in_flight: int
    waiting: int


class RecordingSignals:
    """``ScaleSignals`` that keeps every report and poke."""

    def __init__(self) -> None:
        self.reports: list[Report] = []
        self.pokes: list[Target] = []

    def report(self, reporter: str, target: Target, *, in_flight: int, waiting: int) -> None:
        self.reports.append(Report(reporter, target, in_flight, waiting))

    def poke(self, target: Target) -> None:
        self.pokes.append(target)


@dataclass(frozen=True, slots=True)
class AgentAnswer:
    """What the scripted agent answers: a status, ``protocol`` response headers, a body."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"{}"

    @classmethod
    def ran(cls, result: object = None, **headers: str) -> AgentAnswer:
        return cls(200, headers, json.dumps(result).encode())

    @classmethod
    def function_error(cls, error_type: str) -> AgentAnswer:
        body = json.dumps({"errorType": error_type, "errorMessage": "boom"}).encode()
        return cls(200, {protocol.FUNCTION_ERROR: "Unhandled"}, body)

    @classmethod
    def busy(cls) -> AgentAnswer:
        return cls(503, {protocol.AGENT_BUSY: "1"}, b"")


@dataclass(frozen=True, slots=True)
class SentCall:
    host: str
    port: int
    path: str
    headers: dict[str, str]
    body: bytes
    read_timeout: float


class ScriptedPool:
    """Stands in for ``ConnectionPool``: answers each request with the next scripted
    answer (the last one repeats), records what was sent and what was forgotten.
    ``None`` in the script plays a connection that could not be made."""

    def __init__(self, answers: Sequence[AgentAnswer | None] = (AgentAnswer.ran(),)) -> None:
        self.answers = list(answers)
        self.sent: list[SentCall] = []
        self.forgotten: list[tuple[str, int]] = []

    async def request(
        self,
        host: str,
        port: int,
        *,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        read_timeout: float,
    ) -> Response:
        assert method == "POST"
        self.sent.append(SentCall(host, port, path, dict(headers), body, read_timeout))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer is None:
            raise RequestNotSent("connection refused")
        return Response(
            answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.body
        )

    def forget(self, host: str, port: int) -> None:
        self.forgotten.append((host, port))


@dataclass
class RecordingQueue:
    """A queue that records what is published, or refuses with ``refuse``."""

    published: list[QueuedEvent] = field(default_factory=list)
    refuse: errors.LambdaError | None = None

    async def publish(self, event: QueuedEvent) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.published.append(event)

    async def consume(self) -> AsyncIterator[Delivery]:
        raise AssertionError("the gateway only publishes")
        yield

    async def complete(
        self,
        delivery: Delivery,
        *,
        events: Sequence[QueuedEvent] = (),
        messages: Sequence[tuple[str, TopicMessage]] = (),
    ) -> None:
        raise AssertionError("the gateway only publishes")


@dataclass
class InvokePath:
    """The invoke use case wired as the launcher wires it, over the fakes above."""

    invoker: Invoker
    metered: MeteredInvoker
    activator: Activator
    pool: ScriptedPool
    queue: RecordingQueue
    producer: EventProducer


def invoke_path(
    catalog: Catalog,
    *,
    endpoints: StaticEndpoints,
    signals: RecordingSignals,
    registry: CollectorRegistry,
    pool: ScriptedPool | None = None,
    region: str = "us-east-1",
    max_wait_seconds: float = 0.05,
) -> InvokePath:
    pool = pool or ScriptedPool()
    metrics = GatewayMetrics(registry)
    settings = InvokeSettings(max_waiting_requests=10, max_wait_seconds=max_wait_seconds)
    activator = Activator(
        endpoints=endpoints,
        signals=signals,
        reporter="gateway-1",
        metrics=metrics,
        max_waiting=settings.max_waiting_requests,
    )
    invoker = Invoker(
        activator=activator,
        endpoints=endpoints,
        pool=pool,  # type: ignore[arg-type]  # the pool's two methods the invoker calls
        settings=settings,
        region=region,
    )
    invoker.on_catalog(catalog)
    metered = MeteredInvoker(invoker, metrics)
    queue = RecordingQueue()
    producer = EventProducer(
        queue=queue, invoker=metered, metrics=AsyncMetrics(registry), clock=lambda: 1000.0
    )
    return InvokePath(invoker, metered, activator, pool, queue, producer)
