"""The autoscaler loop: samples what the invoke path reports, decides, and scales.

The launch package builds one ``Autoscaler`` and hands it to the gateway as its
``ScaleSignals``. ``report`` and ``poke`` only record and wake (the invoke path never
waits on a decision); each gateway reports under its own reporter id, and a target's
demand is the sum over reporters. Every tick (1 s) the loop samples every target in the latest
catalog, asks the pure ``decide`` for a replica count, and calls the backend's
declarative ``scale``; a poke runs the same pass for one target at once. While the
backend defers starts for want of capacity, every pass also looks at the idle targets,
which ``decide`` then reclaims down to their provisioned floor. The same pass
reports provisioned-concurrency configs READY (or FAILED) to the store, and scales a
version that left the catalog to zero.

Call ``report``/``poke`` from the event loop's thread; the catalog listener is called
by the store on that thread too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from controller.autoscaler import decide, specs
from controller.metrics import ControllerMetrics
from kubelambda.errors import LambdaError
from kubelambda.models import FunctionVersion, ProvisionedStatus, Target
from kubelambda.ports.catalog import Catalog
from kubelambda.ports.control import ControllerStore
from kubelambda.ports.instances import InstanceBackend

__all__ = ["Autoscaler"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Counts:
    """The latest counts, and the most seen since the last sample: a one-second tick
    would otherwise miss invocations that start and end between two ticks.

    The peak is of in-flight + waiting at one moment, not the sum of separate peaks: a
    request that waited and then ran is one unit of demand, not two. ``idle_since`` is
    when both last fell to zero (None while either is not)."""

    in_flight: int = 0
    waiting: int = 0
    peak_in_flight: int = 0
    peak_demand: int = 0
    idle_since: float | None = None


class Autoscaler:
    """``ScaleSignals`` for the invoke path, and the loop that acts on them."""

    def __init__(
        self,
        store: ControllerStore,
        backend: InstanceBackend,
        *,
        policy: specs.ScalePolicy | None = None,
        metrics: ControllerMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        tick_seconds: float = 1.0,
        failures_before_failed: int = 3,
        poke_spacing_seconds: float = 0.1,
    ) -> None:
        self._store = store
        self._backend = backend
        self._policy = policy or specs.ScalePolicy()
        self._metrics = metrics
        self._clock = clock
        self._tick_seconds = tick_seconds
        self._failures_before_failed = failures_before_failed
        self._catalog = Catalog()
        self._specs: dict[Target, decide.ScaleSpec] = {}
        self._plans: list[specs.ProvisionedPlan] = []
        self._versions: dict[Target, FunctionVersion] = {}
        self._stats: dict[Target, decide.ScaleStats] = {}
        self._counts: dict[Target, dict[str, _Counts]] = {}
        self._poked: set[Target] = set()
        # A held request pokes its target; under load that is every request. The first
        # poke of a target is acted on at once; later ones at most every
        # ``poke_spacing`` (their demand adds up in the reports meanwhile), or a pass, and
        # a sample in the target's window, would follow every request.
        self._poke_spacing = poke_spacing_seconds
        self._poke_passes: dict[Target, float] = {}
        self._catalog_changed = False
        self._wake = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None

    # -- ScaleSignals -------------------------------------------------------------------

    def report(self, reporter: str, target: Target, *, in_flight: int, waiting: int) -> None:
        by_reporter = self._counts.setdefault(target, {})
        counts = by_reporter.get(reporter)
        if counts is None:
            counts = by_reporter[reporter] = _Counts()
        counts.in_flight, counts.waiting = in_flight, waiting
        counts.peak_in_flight = max(counts.peak_in_flight, in_flight)
        counts.peak_demand = max(counts.peak_demand, in_flight + waiting)
        if in_flight or waiting:
            counts.idle_since = None
        elif counts.idle_since is None:
            counts.idle_since = self._clock()

    def poke(self, target: Target) -> None:
        if target in self._poked:
            # The loop's next wake-up already counts this target. Waking it again would
            # cost a pass of the loop per queued request while a target is saturated.
            return
        self._poked.add(target)
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------

    async def load(self) -> None:
        """Read the catalog and follow the store's watch, without starting the loop
        (``run_once`` then drives passes by hand)."""
        if self._unsubscribe is None:
            self._on_catalog(await self._store.catalog())
            self._unsubscribe = self._store.subscribe(self._on_catalog)

    async def start(self) -> None:
        await self.load()
        self._task = asyncio.create_task(self._run(), name="autoscaler")

    async def aclose(self) -> None:
        """Stop deciding. Instances keep running: the backend's ``aclose`` stops them."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            # wait, not await: the loop's own CancelledError is expected, but a
            # cancellation of our caller must still reach it.
            await asyncio.wait({self._task})
            self._task = None

    async def __aenter__(self) -> Autoscaler:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the loop -----------------------------------------------------------------------

    async def run_once(self, targets: set[Target] | None = None) -> None:
        """One pass over ``targets`` (all known when ``None``), at the clock's ``now``."""
        now = self._clock()
        poked = set(self._poked) if targets is None else self._poked & targets
        self._poked -= poked
        for target in poked:
            self._poke_passes[target] = now
        if targets is None:
            targets = set(self._specs) | poked
        for gone in [t for t in self._versions if t not in self._specs]:
            await self._retire(gone)
        chosen = targets & set(self._specs)
        for target in sorted(chosen, key=str):
            await self._scale_one(target, now, poked=target in poked)
        if self._starved():
            # A poke's start waits for capacity: idle instances of the other targets
            # make room now rather than at the next tick.
            for target in sorted(set(self._specs) - chosen, key=str):
                if self._reclaimable(target, now):
                    await self._scale_one(target, now, poked=False)
        await self._report_provisioned()

    async def _scale_one(self, target: Target, now: float, *, poked: bool) -> None:
        try:
            await self._scale(target, now, poked=poked)
        except Exception:
            # One target's backend error must not stop the others from scaling.
            if self._metrics is not None:
                self._metrics.reconcile_failed("autoscaler")
            logger.exception(
                "scaling failed namespace=%s function=%s version=%s",
                target.namespace,
                target.function_name,
                target.version,
            )

    def _starved(self) -> set[Target]:
        """Targets whose starts the backend defers *and* that have requests waiting.
        A deferral alone is no pressure: a stable window still wanting the instances of
        a burst that has passed would otherwise reclaim every other idle function."""
        return {
            target
            for target in self._backend.starts_deferred()
            if any(c.waiting for c in self._counts.get(target, {}).values())
        }

    def _reclaimable(self, target: Target, now: float) -> bool:
        """Whether ``target`` runs more than its floor and nothing of it has been in
        flight or waiting since its last sample, or for ``RECLAIM_IDLE_SECONDS`` (what
        ``decide`` reclaims under pressure)."""
        stats = self._stats.get(target)
        reports = self._counts.get(target, {}).values()
        return (
            stats is not None
            and stats.replicas > self._specs[target].min_instances
            and (
                not any(c.peak_demand for c in reports)
                or self._idle_for(target, now) >= decide.RECLAIM_IDLE_SECONDS
            )
        )

    def _idle_for(self, target: Target, now: float) -> float:
        """How long no gateway has had a request of ``target`` in flight or waiting."""
        since = [c.idle_since for c in self._counts.get(target, {}).values()]
        if None in since:
            return 0.0
        return now - max((t for t in since if t is not None), default=-math.inf)

    async def _run(self) -> None:
        next_tick = self._clock()
        while True:
            wake_at = min(next_tick, self._next_poke_pass())
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the
            # cancellation from aclose when the wake fires at the same moment.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wake_at - self._clock())):
                    await self._wake.wait()
            self._wake.clear()
            now = self._clock()
            full = now >= next_tick or self._catalog_changed
            due = {t for t in self._poked if self._poke_due_at(t) <= now}
            if not full and not due:
                continue
            self._catalog_changed = False
            try:
                await self.run_once(None if full else due)
            except Exception:
                # A failed pass (the store refusing a report, say) must not end the loop.
                if self._metrics is not None:
                    self._metrics.reconcile_failed("autoscaler")
                logger.exception("autoscaler pass failed")
            if full:
                next_tick = self._clock() + self._tick_seconds

    def _poke_due_at(self, target: Target) -> float:
        return self._poke_passes.get(target, -math.inf) + self._poke_spacing

    def _next_poke_pass(self) -> float:
        return min((self._poke_due_at(t) for t in self._poked), default=math.inf)

    def _on_catalog(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._specs = specs.scale_specs(catalog, self._policy)
        self._plans = specs.provisioned_plans(catalog)
        # Only runnable versions can have instances to retire later; a Pending one has none.
        self._versions.update({t: catalog.versions[t] for t in self._specs})
        self._catalog_changed = True
        self._wake.set()

    async def _scale(self, target: Target, now: float, *, poked: bool) -> None:
        spec = self._specs[target]
        version = self._catalog.versions[target]
        self._versions[target] = version
        reports = self._counts.get(target, {}).values()
        # Summed over gateways: each reports only what it holds itself.
        peak_in_flight = sum(c.peak_in_flight for c in reports)
        # A poke means a request is held right now, whatever the last report said; demand
        # beyond the in-flight peak was held.
        demand = max(sum(c.peak_demand for c in reports), 1 if poked else 0)
        sample = decide.Sample(
            at=now,
            in_flight=peak_in_flight,
            waiting=demand - peak_in_flight,
            ready=self._backend.ready_instances(target),
            idle_for=self._idle_for(target, now),
        )
        for counts in reports:
            counts.peak_in_flight = counts.in_flight
            counts.peak_demand = counts.in_flight + counts.waiting
        stats = self._stats.get(target) or _first_stats(spec, ready=sample.ready, now=now)
        stats = stats.with_sample(sample)
        # Only others' deferred starts are pressure: a target's own (a stable window
        # that still wants more) must not reclaim the instance it would start beside.
        pressure = bool(self._starved() - {target})
        decision = decide.decide(stats, spec, now, pressure=pressure)
        previous = stats.replicas
        self._stats[target] = stats.with_decision(decision)
        if decision.reason is decide.Reason.RECLAIMED:
            # Ready instances stopped; the rest of ``previous`` were starts not made yet.
            stopped = max(0, sample.ready - decision.replicas)
            logger.info(
                "reclaimed under pressure namespace=%s function=%s version=%s instances=%d",
                target.namespace,
                target.function_name,
                target.version,
                stopped,
            )
            if self._metrics is not None and stopped:
                self._metrics.reclaimed(target, count=stopped)
        if decision.replicas != previous:
            logger.info(
                "scale namespace=%s function=%s version=%s from=%d to=%d reason=%s demand=%d "
                "stable=%d panic=%d",
                target.namespace,
                target.function_name,
                target.version,
                previous,
                decision.replicas,
                decision.reason,
                sample.demand,
                decision.stable_desired,
                decision.panic_desired,
            )
        if self._metrics is not None:
            self._metrics.decided(target, previous=previous, replicas=decision.replicas)
        await self._backend.scale(
            version,
            replicas=decision.replicas,
            concurrency=spec.instance_concurrency,
            provisioned=min(spec.min_instances, decision.replicas),
        )

    async def _retire(self, target: Target) -> None:
        version = self._versions.pop(target)
        self._poke_passes.pop(target, None)
        logger.info(
            "scale namespace=%s function=%s version=%s to=0 reason=removed-from-catalog",
            target.namespace,
            target.function_name,
            target.version,
        )
        await self._backend.scale(version, replicas=0, concurrency=1)
        self._stats.pop(target, None)
        self._counts.pop(target, None)
        if self._metrics is not None:
            self._metrics.forget(target)

    async def _report_provisioned(self) -> None:
        for plan in self._plans:
            key = (plan.function, plan.qualifier)
            status, reason = self._provisioned_status(plan)
            if status is ProvisionedStatus.IN_PROGRESS:
                continue
            config = self._catalog.provisioned.get(key)
            allocated = plan.requested if status is ProvisionedStatus.READY else 0
            # The store publishes the new catalog before this await returns, so the
            # comparison with the catalog is enough to write each change only once.
            if config is None or (config.status, config.allocated, config.status_reason) == (
                status,
                allocated,
                reason,
            ):
                continue
            try:
                await self._store.set_provisioned_status(
                    plan.function,
                    plan.qualifier,
                    allocated=allocated,
                    status=status,
                    reason=reason,
                )
            except LambdaError as exc:
                # Deleted between the catalog and now: the next catalog drops the plan.
                logger.info("provisioned status not recorded key=%s error=%s", key, exc)
                continue
            logger.info(
                "provisioned concurrency function=%s qualifier=%s status=%s allocated=%d reason=%s",
                plan.function,
                plan.qualifier,
                status,
                allocated,
                reason,
            )

    def _provisioned_status(self, plan: specs.ProvisionedPlan) -> tuple[ProvisionedStatus, str]:
        for target in plan.shares:
            failure = self._backend.start_failure(target)
            if failure is not None and (
                not failure.retriable or failure.consecutive >= self._failures_before_failed
            ):
                return ProvisionedStatus.FAILED, f"{target}: {failure.reason}"
        ready = all(
            self._backend.ready_instances(t) >= self._specs[t].min_instances
            for t in plan.shares
            if t in self._specs
        )
        return (ProvisionedStatus.READY, "") if ready else (ProvisionedStatus.IN_PROGRESS, "")


def _first_stats(spec: decide.ScaleSpec, *, ready: int, now: float) -> decide.ScaleStats:
    """What a target starts with when this autoscaler first sees it. Instances already
    running (started by a controller that led before, or by this one before a restart)
    count as busy just now: they are kept for an idle timeout, not dropped at once."""
    if not ready:
        return decide.ScaleStats(window=spec.stable_window)
    return decide.ScaleStats(window=spec.stable_window, replicas=ready, last_busy_at=now)
