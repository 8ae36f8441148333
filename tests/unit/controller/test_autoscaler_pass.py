"""One autoscaler pass at a time, on a hand-driven clock: what it samples and asks for.

The backend and store here are small in-test objects that satisfy the ports and record
calls; the loop against the real ones is in tests/integration/controller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from controller.autoscaler import decide
from controller.autoscaler.loop import Autoscaler
from controller.metrics import ControllerMetrics
from kubelambda.models import (
    DEFAULT_NAMESPACE,
    IDLE_TIMEOUT_TAG,
    INSTANCE_CONCURRENCY_TAG,
    Alias,
    CodePackage,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    ProvisionedConcurrency,
    ProvisionedStatus,
    State,
    Target,
    frozen_mapping,
)
from kubelambda.ports.catalog import Catalog
from kubelambda.ports.instances import StartFailure
from tests import factories

NS = DEFAULT_NAMESPACE
F = FunctionKey(NS, "f")
V1 = factories.target("f", "1")
V2 = factories.target("f", "2")
# Two gateway replicas, each reporting only what it holds itself.
GATEWAY_A = "gateway-a"
GATEWAY_B = "gateway-b"


def version(target: Target) -> FunctionVersion:
    return factories.function_version(target.function_name, target.version)


def catalog(
    *,
    tags: Mapping[str, str] | None = None,
    provisioned: Sequence[ProvisionedConcurrency] = (),
    aliases: Sequence[Alias] = (),
) -> Catalog:
    return Catalog(
        versions={t: version(t) for t in (V1, V2)},
        settings={F: FunctionSettings(NS, "f", tags=frozen_mapping(tags or {}))},
        provisioned={(p.key, p.qualifier): p for p in provisioned},
        aliases={(a.key, a.name): a for a in aliases},
    )


@dataclass
class Store:
    current: Catalog
    listeners: list[Callable[[Catalog], None]] = field(default_factory=list)
    reports: list[tuple[FunctionKey, str, int, ProvisionedStatus, str]] = field(
        default_factory=list
    )

    async def catalog(self) -> Catalog:
        return self.current

    def subscribe(self, listener: Callable[[Catalog], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: None

    def publish(self, catalog: Catalog) -> None:
        self.current = catalog
        for listener in self.listeners:
            listener(catalog)

    async def finish_package(
        self, function: FunctionKey, code_sha256: str, *, error: str | None
    ) -> bool:
        raise AssertionError("the autoscaler settles no package")

    async def set_provisioned_status(
        self,
        function: FunctionKey,
        qualifier: str,
        *,
        allocated: int,
        status: ProvisionedStatus,
        reason: str = "",
    ) -> None:
        self.reports.append((function, qualifier, allocated, status, reason))
        key = (function, qualifier)
        configs = dict(self.current.provisioned)
        configs[key] = configs[key].with_changes(
            allocated=allocated, status=status, status_reason=reason
        )
        self.publish(
            Catalog(self.current.versions, self.current.aliases, self.current.settings, configs)
        )


@dataclass
class Backend:
    ready: dict[Target, int] = field(default_factory=dict)
    failures: dict[Target, StartFailure] = field(default_factory=dict)
    asked: dict[Target, tuple[int, int, int]] = field(default_factory=dict)
    deferring: set[Target] = field(default_factory=set)

    async def scale(
        self, version: FunctionVersion, *, replicas: int, concurrency: int, provisioned: int = 0
    ) -> None:
        self.asked[version.target] = (replicas, concurrency, provisioned)

    async def prepare(self, package: CodePackage, *, function: FunctionKey) -> None:
        raise AssertionError("the autoscaler prepares no package")

    async def discard(self, sha256_hexes: Collection[str]) -> None:
        raise AssertionError("the autoscaler discards no package")

    def ready_instances(self, target: Target) -> int:
        return self.ready.get(target, 0)

    def starts_deferred(self) -> Collection[Target]:
        return self.deferring

    def start_failure(self, target: Target) -> StartFailure | None:
        return self.failures.get(target)

    async def aclose(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def started(
    store: Store, backend: Backend, clock: Clock, *, failures_before_failed: int = 3
) -> Autoscaler:
    """Following the store, with passes driven by the test (no loop task)."""
    autoscaler = Autoscaler(
        store, backend, clock=clock, failures_before_failed=failures_before_failed
    )
    await autoscaler.load()
    return autoscaler


async def test_a_poke_alone_asks_for_one_instance() -> None:
    backend, clock = Backend(), Clock()
    autoscaler = await started(Store(catalog()), backend, clock)
    try:
        autoscaler.poke(V1)
        await autoscaler.run_once({V1})
    finally:
        await autoscaler.aclose()

    assert backend.asked[V1] == (1, 1, 0)


async def test_a_short_invocation_between_passes_still_counts() -> None:
    backend, clock = Backend(), Clock()
    autoscaler = await started(Store(catalog()), backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V1, in_flight=3, waiting=0)
        autoscaler.report(GATEWAY_A, V1, in_flight=0, waiting=0)
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert backend.asked[V1][0] == 3


async def test_a_request_that_waited_then_ran_is_one_unit_of_demand() -> None:
    backend, clock = Backend(), Clock()
    autoscaler = await started(Store(catalog()), backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V1, in_flight=0, waiting=1)
        autoscaler.poke(V1)
        autoscaler.report(GATEWAY_A, V1, in_flight=1, waiting=0)
        await autoscaler.run_once({V1})
        backend.ready[V1] = 1
        clock.now += 1
        await autoscaler.run_once({V1})
    finally:
        await autoscaler.aclose()

    assert backend.asked[V1][0] == 1


async def test_the_in_flight_counts_of_two_reporters_are_summed() -> None:
    backend, clock = Backend(), Clock()
    autoscaler = await started(Store(catalog()), backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V1, in_flight=2, waiting=0)
        autoscaler.report(GATEWAY_B, V1, in_flight=3, waiting=0)
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    # Neither the last report (3) nor the larger one: 2 + 3 at one request per instance.
    assert backend.asked[V1][0] == 5


async def test_requests_held_by_one_reporter_add_to_another_reporters_in_flight() -> None:
    backend, clock = Backend(), Clock()
    autoscaler = await started(Store(catalog()), backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V1, in_flight=1, waiting=0)
        autoscaler.report(GATEWAY_B, V1, in_flight=0, waiting=2)
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert backend.asked[V1][0] == 3


async def test_a_reporters_new_report_replaces_its_previous_one() -> None:
    backend, clock = Backend(), Clock()
    autoscaler = await started(Store(catalog()), backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V1, in_flight=3, waiting=0)
        autoscaler.report(GATEWAY_A, V1, in_flight=3, waiting=0)
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert backend.asked[V1][0] == 3


async def test_a_reporter_whose_count_drops_to_zero_no_longer_contributes() -> None:
    # Five ready instances for a demand of five: no panic, so only the stable window
    # (60 s) decides when the target may come down.
    backend, clock = Backend(ready={V1: 5}), Clock()
    autoscaler = await started(Store(catalog()), backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V1, in_flight=2, waiting=0)
        autoscaler.report(GATEWAY_B, V1, in_flight=3, waiting=0)
        await autoscaler.run_once()
        both = backend.asked[V1][0]
        autoscaler.report(GATEWAY_A, V1, in_flight=0, waiting=0)
        # The next pass still counts A's invocations (they ran past the last pass)...
        clock.now += 1.0
        await autoscaler.run_once()
        # ...and once the stable window has moved past them, only B's 3 remain.
        clock.now += 61.0
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert (both, backend.asked[V1][0]) == (5, 3)


async def test_idle_timeout_from_tags_brings_a_target_back_to_zero() -> None:
    backend, clock = Backend(), Clock()
    store = Store(catalog(tags={IDLE_TIMEOUT_TAG: "2"}))
    autoscaler = await started(store, backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V1, in_flight=1, waiting=0)
        await autoscaler.run_once()
        autoscaler.report(GATEWAY_A, V1, in_flight=0, waiting=0)
        # The pass at 1001 still sees the invocation (it ran past the pass at 1000).
        clock.now += 1.0
        await autoscaler.run_once()
        clock.now += 1.5
        await autoscaler.run_once()
        held = backend.asked[V1][0]
        clock.now += 0.5
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert (held, backend.asked[V1][0]) == (1, 0)


async def test_instance_concurrency_from_tags_reaches_the_backend() -> None:
    backend, clock = Backend(), Clock()
    autoscaler = await started(Store(catalog(tags={INSTANCE_CONCURRENCY_TAG: "4"})), backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V1, in_flight=6, waiting=0)
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    # 4 per instance at 70 %: 2.8 requests each, ceil(6 / 2.8) = 3 instances.
    assert backend.asked[V1] == (3, 4, 0)


async def test_provisioned_alias_config_warms_both_versions_and_reports_ready() -> None:
    backend, clock = Backend(), Clock()
    alias = Alias(NS, "f", "live", "1", "rev", additional_version_weights={"2": 0.25})
    store = Store(
        catalog(aliases=[alias], provisioned=[ProvisionedConcurrency(NS, "f", "live", 4)])
    )
    autoscaler = await started(store, backend, clock)
    try:
        await autoscaler.run_once()
        asked = (backend.asked[V1], backend.asked[V2])
        backend.ready = {V1: 3, V2: 1}
        await autoscaler.run_once()
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert asked == ((3, 1, 3), (1, 1, 1))
    assert store.reports == [(F, "live", 4, ProvisionedStatus.READY, "")]


async def test_provisioned_config_fails_after_repeated_start_failures() -> None:
    backend, clock = Backend(), Clock()
    store = Store(catalog(provisioned=[ProvisionedConcurrency(NS, "f", "1", 1)]))
    autoscaler = await started(store, backend, clock, failures_before_failed=3)
    try:
        backend.failures[V1] = StartFailure(2, "boom", retriable=True)
        await autoscaler.run_once()
        early = list(store.reports)
        backend.failures[V1] = StartFailure(3, "boom", retriable=True)
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert early == []
    assert store.reports == [(F, "1", 0, ProvisionedStatus.FAILED, "default/f:1: boom")]


async def test_a_version_that_leaves_the_catalog_is_scaled_to_zero() -> None:
    backend, clock = Backend(), Clock()
    store = Store(catalog())
    autoscaler = await started(store, backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V2, in_flight=2, waiting=0)
        await autoscaler.run_once()
        running = backend.asked[V2][0]
        store.publish(Catalog(versions={V1: version(V1)}))
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert (running, backend.asked[V2][0]) == (2, 0)


async def test_aclose_ends_the_loop_even_when_a_wake_up_is_pending() -> None:
    store = Store(catalog())
    autoscaler = Autoscaler(store, Backend(), tick_seconds=3600.0)
    await autoscaler.start()
    await asyncio.sleep(0.05)  # the first pass runs; then the loop waits for a wake-up

    store.publish(catalog(tags={IDLE_TIMEOUT_TAG: "5"}))  # wakes the loop...
    async with asyncio.timeout(2.0):
        await autoscaler.aclose()  # ...in the same turn as the cancellation


async def test_a_pending_version_is_never_scaled_nor_retired() -> None:
    backend, clock = Backend(), Clock()
    pending = factories.function_version("f", "3", state=State.PENDING)
    current = catalog()
    store = Store(
        Catalog(versions={**current.versions, pending.target: pending}, settings=current.settings)
    )
    autoscaler = await started(store, backend, clock)
    try:
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert pending.target not in backend.asked


async def test_a_version_running_before_this_autoscaler_keeps_running_for_an_idle_timeout() -> None:
    # A controller taking over (or restarted) finds two idle instances of V1 running: it
    # scales to what the (absent) demand needs, but not to zero before an idle timeout.
    backend, clock = Backend(ready={V1: 2}), Clock()
    autoscaler = await started(Store(catalog(tags={IDLE_TIMEOUT_TAG: "10"})), backend, clock)
    try:
        await autoscaler.run_once()
        kept = backend.asked[V1][0]
        clock.now += 11.0
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert (kept, backend.asked[V1][0], backend.asked[V2][0]) == (1, 0, 0)


class FailingBackend(Backend):
    async def scale(
        self, version: FunctionVersion, *, replicas: int, concurrency: int, provisioned: int = 0
    ) -> None:
        raise RuntimeError("the apiserver refused")


async def test_a_failed_scale_counts_as_a_reconcile_error_and_the_pass_goes_on() -> None:
    registry = CollectorRegistry()
    autoscaler = Autoscaler(
        Store(catalog()), FailingBackend(), clock=Clock(), metrics=ControllerMetrics(registry)
    )
    await autoscaler.load()
    try:
        autoscaler.poke(V1)
        await autoscaler.run_once({V1})
    finally:
        await autoscaler.aclose()

    errors_total = registry.get_sample_value(
        "kubelambda_reconcile_errors_total", {"reconciler": "autoscaler"}
    )
    assert errors_total == 1.0


async def test_a_start_deferred_for_one_target_reclaims_an_idle_other_at_once() -> None:
    registry = CollectorRegistry()
    backend, clock = Backend(), Clock()
    autoscaler = Autoscaler(
        Store(catalog()), backend, clock=clock, metrics=ControllerMetrics(registry)
    )
    await autoscaler.load()
    try:
        autoscaler.report(GATEWAY_A, V2, in_flight=1, waiting=0)
        await autoscaler.run_once()
        autoscaler.report(GATEWAY_A, V2, in_flight=0, waiting=0)
        clock.now += 1
        await autoscaler.run_once()  # V2 was busy since the last pass: kept
        kept = backend.asked[V2][0]
        backend.ready[V2] = 1
        backend.deferring = {V1}
        clock.now += 0.1
        autoscaler.report(GATEWAY_A, V1, in_flight=0, waiting=1)
        autoscaler.poke(V1)
        await autoscaler.run_once({V1})  # a poke's pass, not a tick
        reclaimed = backend.asked[V2][0]
        backend.deferring = set()
        clock.now += 1
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert (kept, reclaimed, backend.asked[V2][0]) == (1, 0, 0)
    labels = {"namespace": NS, "function": "f", "version": "2"}
    assert registry.get_sample_value("kubelambda_instances_reclaimed_total", labels) == 1


async def test_a_burst_that_ended_is_reclaimed_for_a_waiting_request_before_the_next_tick() -> None:
    # V2 is sampled at the height of its burst; the burst then ends, and a request of V1
    # waits for capacity. Waiting for V2's next sample held it up to a tick and a half.
    backend, clock = Backend(), Clock()
    autoscaler = await started(Store(catalog()), backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V2, in_flight=8, waiting=0)
        await autoscaler.run_once()
        backend.ready[V2] = 8
        clock.now += 0.5
        autoscaler.report(GATEWAY_A, V2, in_flight=0, waiting=0)
        backend.deferring = {V1}
        autoscaler.report(GATEWAY_A, V1, in_flight=0, waiting=1)
        autoscaler.poke(V1)
        await autoscaler.run_once({V1})  # the burst is over, but only just: kept
        kept = backend.asked[V2][0]
        clock.now += decide.RECLAIM_IDLE_SECONDS
        autoscaler.poke(V1)
        await autoscaler.run_once({V1})
    finally:
        await autoscaler.aclose()

    assert (kept, backend.asked[V2][0]) == (8, 0)


async def test_a_target_busy_at_another_gateway_is_not_reclaimed() -> None:
    backend, clock = Backend(), Clock()
    autoscaler = await started(Store(catalog()), backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V2, in_flight=2, waiting=0)
        autoscaler.report(GATEWAY_B, V2, in_flight=2, waiting=0)
        await autoscaler.run_once()
        backend.ready[V2] = 4
        autoscaler.report(GATEWAY_A, V2, in_flight=0, waiting=0)
        backend.deferring = {V1}
        autoscaler.report(GATEWAY_A, V1, in_flight=0, waiting=1)
        clock.now += 5 * decide.RECLAIM_IDLE_SECONDS
        autoscaler.poke(V1)
        await autoscaler.run_once({V1})
    finally:
        await autoscaler.aclose()

    assert backend.asked[V2][0] == 4


async def test_deferred_starts_with_no_request_waiting_reclaim_nothing() -> None:
    # V1's stable window still wants the instances of a burst that has passed: its
    # deferred starts serve nobody now, so V2's idle instance stays.
    backend, clock = Backend(), Clock()
    autoscaler = await started(Store(catalog()), backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V2, in_flight=1, waiting=0)
        await autoscaler.run_once()
        autoscaler.report(GATEWAY_A, V2, in_flight=0, waiting=0)
        backend.ready[V2] = 1
        backend.deferring = {V1}
        autoscaler.report(GATEWAY_A, V1, in_flight=3, waiting=0)
        for _ in range(3):
            clock.now += 1
            await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert backend.asked[V2][0] == 1


async def test_a_target_is_not_reclaimed_for_its_own_deferred_starts() -> None:
    backend, clock = Backend(deferring={V1}), Clock()
    autoscaler = await started(Store(catalog()), backend, clock)
    try:
        autoscaler.report(GATEWAY_A, V1, in_flight=2, waiting=0)
        await autoscaler.run_once()
        autoscaler.report(GATEWAY_A, V1, in_flight=0, waiting=0)
        clock.now += 1
        await autoscaler.run_once()
        clock.now += 1
        await autoscaler.run_once()
    finally:
        await autoscaler.aclose()

    assert backend.asked[V1][0] == 2


@dataclass
class CountingBackend(Backend):
    passes: dict[Target, int] = field(default_factory=dict)

    async def scale(
        self, version: FunctionVersion, *, replicas: int, concurrency: int, provisioned: int = 0
    ) -> None:
        self.passes[version.target] = self.passes.get(version.target, 0) + 1
        await super().scale(version, replicas=replicas, concurrency=concurrency)


async def test_a_stream_of_pokes_is_acted_on_at_once_then_at_most_every_spacing() -> None:
    # Under load every held request pokes: a pass (and a sample in the window) per
    # request cost the gateway's process a sixth of its CPU in embedded mode.
    backend = CountingBackend()
    autoscaler = Autoscaler(
        Store(catalog()), backend, tick_seconds=3600.0, poke_spacing_seconds=0.1
    )
    async with autoscaler:
        await asyncio.sleep(0.05)  # the first (full) pass
        before = backend.passes.get(V1, 0)
        autoscaler.report(GATEWAY_A, V1, in_flight=0, waiting=1)
        autoscaler.poke(V1)
        await asyncio.sleep(0.01)
        first = backend.asked.get(V1)
        for _ in range(100):
            autoscaler.poke(V1)
            await asyncio.sleep(0.003)
        await asyncio.sleep(0.15)
        passes = backend.passes[V1] - before

    assert first is not None and first[0] == 1
    assert 2 <= passes <= 6
