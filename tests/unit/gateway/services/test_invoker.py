"""The transport-free invoke use case: what it sends to an agent, how it moves past busy
instances, and what it gives back (with a scripted agent, ``gateway_fakes``)."""

from __future__ import annotations

import pytest
from gateway_fakes import (
    AgentAnswer,
    InvokePath,
    RecordingSignals,
    ScriptedPool,
    StaticEndpoints,
    endpoint,
    invoke_path,
)
from kubelambda_agent import protocol
from prometheus_client import CollectorRegistry

from gateway.domain.invocation import InvokeRequest
from kubelambda import errors
from kubelambda.models import FunctionSettings
from kubelambda.names import FunctionRef
from kubelambda.ports.catalog import Catalog
from tests import factories

VERSION = factories.function_version("f", timeout=7)
CAPPED = factories.function_version("capped")
CATALOG = Catalog(
    versions={VERSION.target: VERSION, CAPPED.target: CAPPED},
    settings={CAPPED.key: FunctionSettings("default", "capped", reserved_concurrency=1)},
)
T = VERSION.target
A = endpoint("a", target=T, port=1001)
B = endpoint("b", target=T, port=1002)


def request(
    name: str = "f",
    *,
    client_context: str | None = None,
    trace_id: str | None = None,
    tail: bool = False,
) -> InvokeRequest:
    return InvokeRequest(
        FunctionRef("default", name),
        b'{"x": 1}',
        "rid",
        client_context=client_context,
        trace_id=trace_id,
        tail=tail,
    )


def wire(
    endpoints: StaticEndpoints,
    signals: RecordingSignals,
    registry: CollectorRegistry,
    *answers: AgentAnswer | None,
) -> InvokePath:
    return invoke_path(
        CATALOG,
        endpoints=endpoints,
        signals=signals,
        registry=registry,
        pool=ScriptedPool(answers or (AgentAnswer.ran(),)),
        region="eu-west-1",
    )


async def test_result_carries_what_the_agent_reported(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    endpoints.ready[T] = [A]
    answer = AgentAnswer(
        200,
        {
            protocol.FUNCTION_ERROR: "Unhandled",
            protocol.LOG_RESULT: "bG9n",
            protocol.DURATION_MS: "3",
            protocol.INIT_DURATION_MS: "40",
        },
        b'{"errorType": "E"}',
    )
    result = await wire(endpoints, signals, registry, answer).invoker.invoke(request())
    assert (result.request_id, result.executed_version, result.payload) == (
        "rid",
        "$LATEST",
        b'{"errorType": "E"}',
    )
    assert (result.function_error, result.log_result) == ("Unhandled", "bG9n")
    assert (result.duration_seconds, result.init_duration_seconds) == (0.003, 0.04)


async def test_the_agent_gets_the_request_and_a_timeout_past_the_functions(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    endpoints.ready[T] = [A]
    wired = wire(endpoints, signals, registry)
    await wired.invoker.invoke(request(client_context='{"a":1}', trace_id="Root=1", tail=True))
    (sent,) = wired.pool.sent
    assert (sent.port, sent.path, sent.body) == (1001, protocol.INVOKE_PATH, b'{"x": 1}')
    assert sent.headers == {
        protocol.INVOKE_TOKEN: "t",
        protocol.REQUEST_ID: "rid",
        protocol.INVOKED_FUNCTION_ARN: "arn:aws:lambda:eu-west-1:000000000000:function:f",
        protocol.CLIENT_CONTEXT: '{"a":1}',
        protocol.TRACE_ID: "Root=1",
        protocol.LOG_TYPE: "Tail",
    }
    # The function's 7 s plus the default 15 s margin for a cold start and the answer.
    assert sent.read_timeout == 22


@pytest.mark.parametrize("refusal", [AgentAnswer.busy(), None], ids=["busy", "unreachable"])
async def test_an_instance_that_ran_nothing_is_passed_over_for_another(
    endpoints: StaticEndpoints,
    signals: RecordingSignals,
    registry: CollectorRegistry,
    refusal: AgentAnswer | None,
) -> None:
    endpoints.ready[T] = [A, B]
    wired = wire(endpoints, signals, registry, refusal, AgentAnswer.ran("second"))
    result = await wired.invoker.invoke(request())
    assert result.payload == b'"second"'
    assert [sent.port for sent in wired.pool.sent] == [1001, 1002]
    assert wired.activator.in_flight(T) == 0


async def test_when_every_instance_is_busy_it_tries_again_after_a_pause(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    endpoints.ready[T] = [A]
    wired = wire(endpoints, signals, registry, AgentAnswer.busy(), AgentAnswer.ran("later"))
    assert (await wired.invoker.invoke(request())).payload == b'"later"'
    assert [sent.port for sent in wired.pool.sent] == [1001, 1001]


async def test_busy_until_the_deadline_is_a_concurrency_throttle(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    endpoints.ready[T] = [A, B]
    wired = wire(endpoints, signals, registry, AgentAnswer.busy())
    with pytest.raises(errors.TooManyRequests) as caught:
        await wired.invoker.invoke(request())
    assert caught.value.reason == "ConcurrentInvocationLimitExceeded"
    assert wired.activator.in_flight(T) == 0


async def test_reserved_concurrency_is_given_back_however_the_invocation_ends(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    endpoints.ready[CAPPED.target] = [endpoint("c", target=CAPPED.target)]
    wired = wire(endpoints, signals, registry, AgentAnswer(500, {}, b""), AgentAnswer.ran())
    with pytest.raises(errors.ServiceError):
        await wired.invoker.invoke(request("capped"))
    # Had the failed one kept its slot, the cap of 1 would refuse this one.
    assert (await wired.invoker.invoke(request("capped"))).function_error is None


async def test_connections_to_instances_that_left_are_forgotten(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    wired = wire(endpoints, signals, registry)
    endpoints.set_endpoints(T, [A, B])
    endpoints.set_endpoints(T, [B])
    endpoints.set_endpoints(T, [])
    assert wired.pool.forgotten == [("127.0.0.1", 1001), ("127.0.0.1", 1002)]


async def test_close_stops_following_the_endpoints(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    wired = wire(endpoints, signals, registry)
    wired.invoker.close()
    wired.activator.close()
    assert endpoints.listeners == 0


def test_resolve_uses_the_latest_catalog_and_the_installations_region(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    wired = wire(endpoints, signals, registry)
    resolved = wired.invoker.resolve(FunctionRef("default", "f", "$LATEST"))
    assert resolved.invoked_function_arn.startswith("arn:aws:lambda:eu-west-1:")
    wired.invoker.on_catalog(Catalog())
    with pytest.raises(errors.ResourceNotFound):
        wired.invoker.resolve(FunctionRef("default", "f"))
