"""The metered invoker counts each invocation's outcome under the version that ran:
labels are the resolved namespace, function and version, never the caller's input."""

from __future__ import annotations

import pytest
from gateway_fakes import (
    AgentAnswer,
    RecordingSignals,
    ScriptedPool,
    StaticEndpoints,
    endpoint,
    invoke_path,
)
from kubelambda_agent import protocol
from prometheus_client import CollectorRegistry

from gateway.domain.invocation import InvokeRequest
from gateway.services.metered_invoker import MeteredInvoker
from kubelambda import errors
from kubelambda.models import Alias, FunctionKey, FunctionSettings, Target
from kubelambda.names import FunctionRef
from kubelambda.ports.catalog import Catalog
from tests import factories

A, B = "team-a", "team-b"
VERSIONS = [
    factories.function_version("f", namespace=A),
    factories.function_version("f", "2", namespace=A),
    factories.function_version("f", namespace=B),
    factories.function_version("capped", namespace=A),
]
CATALOG = Catalog(
    versions={v.target: v for v in VERSIONS},
    aliases={(FunctionKey(A, "f"), "live"): Alias(A, "f", "live", "2", "rev")},
    settings={FunctionKey(A, "capped"): FunctionSettings(A, "capped", reserved_concurrency=0)},
)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def outcome(registry: CollectorRegistry, target: Target, result: str) -> float:
    return sample(
        registry,
        "kubelambda_invocations_total",
        namespace=target.namespace,
        function=target.function_name,
        version=target.version,
        outcome=result,
    )


def request(namespace: str, name: str, qualifier: str | None = None) -> InvokeRequest:
    return InvokeRequest(FunctionRef(namespace, name, qualifier), b"{}", request_id="rid")


def metered(
    endpoints: StaticEndpoints,
    signals: RecordingSignals,
    registry: CollectorRegistry,
    *answers: AgentAnswer | None,
) -> MeteredInvoker:
    for version in VERSIONS:
        instance = f"{version.namespace}-{version.function_name}-{version.version}"
        endpoints.ready[version.target] = [endpoint(instance, target=version.target)]
    pool = ScriptedPool(answers or (AgentAnswer.ran(),))
    return invoke_path(
        CATALOG, endpoints=endpoints, signals=signals, registry=registry, pool=pool
    ).metered


async def test_success_is_counted_under_the_callers_namespace_only(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    invoker = metered(endpoints, signals, registry)
    await invoker.invoke(request(B, "f"))
    assert outcome(registry, Target(B, "f", "$LATEST"), "success") == 1
    assert outcome(registry, Target(A, "f", "$LATEST"), "success") == 0


async def test_an_alias_is_counted_under_the_version_it_ran(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    invoker = metered(endpoints, signals, registry)
    result = await invoker.invoke(request(A, "f", "live"))
    assert result.executed_version == "2"
    assert outcome(registry, Target(A, "f", "2"), "success") == 1


async def test_durations_are_observed_in_seconds(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    answer = AgentAnswer.ran(1, **{protocol.DURATION_MS: "250", protocol.INIT_DURATION_MS: "500"})
    invoker = metered(endpoints, signals, registry, answer)
    await invoker.invoke(request(A, "f"))
    labels = {"namespace": A, "function": "f", "version": "$LATEST"}
    assert sample(registry, "kubelambda_invocation_duration_seconds_sum", **labels) == 0.25
    assert sample(registry, "kubelambda_init_duration_seconds_sum", **labels) == 0.5


@pytest.mark.parametrize(
    ("error_type", "label"),
    [("Sandbox.Timedout", "Sandbox.Timedout"), ("MyOwnError", "Unhandled")],
)
async def test_function_error_is_counted_with_a_bounded_error_type(
    endpoints: StaticEndpoints,
    signals: RecordingSignals,
    registry: CollectorRegistry,
    error_type: str,
    label: str,
) -> None:
    invoker = metered(endpoints, signals, registry, AgentAnswer.function_error(error_type))
    result = await invoker.invoke(request(A, "f"))
    assert result.function_error == "Unhandled"
    target = Target(A, "f", "$LATEST")
    assert outcome(registry, target, "function_error") == 1
    assert outcome(registry, target, "success") == 0
    assert (
        sample(
            registry,
            "kubelambda_invocation_errors_total",
            namespace=A,
            function="f",
            version="$LATEST",
            error_type=label,
        )
        == 1
    )


async def test_reserved_concurrency_throttle_is_counted_with_its_reason(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    invoker = metered(endpoints, signals, registry)
    with pytest.raises(errors.TooManyRequests):
        await invoker.invoke(request(A, "capped"))
    assert outcome(registry, Target(A, "capped", "$LATEST"), "throttled") == 1
    assert (
        sample(
            registry,
            "kubelambda_throttles_total",
            namespace=A,
            function="capped",
            reason="ReservedFunctionConcurrentInvocationLimitExceeded",
        )
        == 1
    )


async def test_no_capacity_in_time_is_counted_as_a_concurrency_throttle(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    invoker = metered(endpoints, signals, registry)
    endpoints.set_endpoints(Target(B, "f", "$LATEST"), [])
    with pytest.raises(errors.TooManyRequests):
        await invoker.invoke(request(B, "f"))
    assert outcome(registry, Target(B, "f", "$LATEST"), "throttled") == 1
    assert (
        sample(
            registry,
            "kubelambda_throttles_total",
            namespace=B,
            function="f",
            reason="ConcurrentInvocationLimitExceeded",
        )
        == 1
    )


async def test_every_instance_busy_is_counted_as_a_concurrency_throttle(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    invoker = metered(endpoints, signals, registry, AgentAnswer.busy())
    with pytest.raises(errors.TooManyRequests):
        await invoker.invoke(request(A, "f"))
    assert (
        sample(
            registry,
            "kubelambda_throttles_total",
            namespace=A,
            function="f",
            reason="ConcurrentInvocationLimitExceeded",
        )
        == 1
    )


async def test_a_platform_failure_is_counted_as_failed(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    invoker = metered(endpoints, signals, registry, AgentAnswer(500, {}, b""))
    with pytest.raises(errors.ServiceError):
        await invoker.invoke(request(A, "f"))
    assert outcome(registry, Target(A, "f", "$LATEST"), "failed") == 1


async def test_an_unresolved_name_touches_no_metric(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    invoker = metered(endpoints, signals, registry)
    with pytest.raises(errors.ResourceNotFound):
        await invoker.invoke(request(A, "made-up-name"))
    with pytest.raises(errors.ResourceNotFound):
        await invoker.invoke(request(B, "capped"))
    labelled = {
        sample.labels.get("function") for family in registry.collect() for sample in family.samples
    }
    assert labelled <= {None}
