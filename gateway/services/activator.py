"""Capacity for one invocation: a slot on a ready instance now, or a bounded wait for one.

The invoke app calls ``acquire`` before proxying and ``release`` after. With a free
slot (the balancer's choice) the request goes at once. Without one — scale from zero,
or every instance busy — the activator holds it in a FIFO per target, pokes the
autoscaler so it decides now rather than at its next tick, and hands the next free
slot to the oldest waiter when an invocation finishes or the backend reports new
endpoints. The queue is bounded in length and in time; past either bound the caller
gets Lambda's 429. One timer per queue, armed for its earliest deadline, enforces the
time bound: under sustained overload nearly every request waits and is served in time,
and a timer of its own (``asyncio.timeout_at``) was a third of what waiting cost.

Every change of the in-flight or waiting count of a target is reported to
``ScaleSignals`` under this gateway's reporter id (an O(1) call), which is all the
autoscaler learns from us; the concurrency and queue gauges read the counts when scraped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

from gateway.metrics import GatewayMetrics
from gateway.services.balancer import Balancer, Choice, least_loaded
from kubelambda import errors
from kubelambda.models import Target
from kubelambda.ports.endpoints import Endpoint, EndpointSource
from kubelambda.ports.signals import ScaleSignals

__all__ = ["CONCURRENCY_LIMIT_REASON", "Activator"]

log = logging.getLogger(__name__)

CONCURRENCY_LIMIT_REASON = "ConcurrentInvocationLimitExceeded"


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[Endpoint]
    exclude: Collection[str]
    since: float
    deadline: float


class _Queue:
    """The waiters of one target and the one timer for their deadlines."""

    __slots__ = ("_expire", "expires_at", "expiry", "waiters")

    def __init__(self, expire: Callable[[], None]) -> None:
        self.waiters: collections.deque[_Waiter] = collections.deque()
        self._expire = expire
        # Fires at ``expires_at``, the earliest deadline of a waiter when it was armed.
        self.expiry: asyncio.TimerHandle | None = None
        self.expires_at = 0.0

    def arm(self, at: float) -> None:
        """Make sure the timer fires no later than ``at``."""
        if self.expiry is not None:
            if self.expires_at <= at:
                return
            self.expiry.cancel()
        self.expiry = asyncio.get_running_loop().call_at(at, self._expire)
        self.expires_at = at

    def disarm(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None


class Activator:
    """Slots on instances for invocations, holding requests while capacity comes up."""

    def __init__(
        self,
        *,
        endpoints: EndpointSource,
        signals: ScaleSignals,
        reporter: str,
        metrics: GatewayMetrics,
        max_waiting: int,
        retry_after_seconds: float = 1.0,
        choose: Choice = least_loaded,
    ) -> None:
        self._endpoints = endpoints
        self._signals = signals
        self._reporter = reporter
        self._metrics = metrics
        self._max_waiting = max_waiting
        self._retry_after = retry_after_seconds
        self._balancer = Balancer(choose)
        self._queues: dict[Target, _Queue] = {}
        self._unsubscribe = endpoints.subscribe(self.capacity_changed)
        self._uncount = metrics.count_load_of(self)

    def in_flight(self, target: Target) -> int:
        return self._balancer.in_flight(target)

    def waiting(self, target: Target) -> int:
        queue = self._queues.get(target)
        return len(queue.waiters) if queue else 0

    def load(self, target: Target) -> tuple[int, int]:
        """``target``'s requests in flight and waiting (``LoadSource``)."""
        return self._balancer.in_flight(target), self.waiting(target)

    def loaded_targets(self) -> Collection[Target]:
        """Targets with requests in flight or waiting (``LoadSource``)."""
        # Copied before hashing: a scrape may read this from another thread.
        return {*self._balancer.loaded_targets(), *list(self._queues)}

    async def acquire(
        self, target: Target, *, deadline: float, exclude: Collection[str] = ()
    ) -> Endpoint:
        """A slot on a ready endpoint of ``target`` (not one in ``exclude``), waiting
        until the loop time ``deadline`` at most. Raises ``TooManyRequests`` when the
        queue is full or the deadline passes."""
        queue = self._queues.get(target)
        if queue is None or not queue.waiters:
            # Nobody is ahead in the queue, so taking a free slot now is fair.
            endpoint = self._balancer.take(self._endpoints.endpoints(target), exclude)
            if endpoint is not None:
                self._report(target)
                return endpoint
        return await self._wait(target, deadline, exclude)

    def release(self, endpoint: Endpoint) -> None:
        """Give back the slot ``acquire`` returned, and pass it on to a waiter if any."""
        self._balancer.give_back(endpoint)
        if self._queues.get(endpoint.target):
            self.capacity_changed(endpoint.target)
        else:
            self._report(endpoint.target)

    def capacity_changed(self, target: Target) -> None:
        """Hand free slots to waiters, oldest first. Called on release and by the
        backend whenever the ready endpoints of ``target`` change."""
        queue = self._queues.get(target)
        if queue is None:
            return
        endpoints = self._endpoints.endpoints(target)
        waiters = queue.waiters
        handed = False
        # Waiters that excluded the free endpoints keep their place in the queue.
        passed_over: list[_Waiter] = []
        while waiters:
            waiter = waiters[0]
            if waiter.future.done():
                waiters.popleft()
                continue
            endpoint = self._balancer.take(endpoints, waiter.exclude)
            if endpoint is None:
                if not waiter.exclude:
                    # Full for this waiter is full for everyone behind it: stop here,
                    # so a release costs O(1) however long the queue is.
                    break
                passed_over.append(waiters.popleft())
                continue
            waiters.popleft()
            waiter.future.set_result(endpoint)
            handed = True
        waiters.extendleft(reversed(passed_over))
        if not queue.waiters:
            self._drop(target, queue)
        if handed:
            self._report(target)

    def close(self) -> None:
        self._unsubscribe()
        self._uncount()
        for queue in self._queues.values():
            queue.disarm()
            for waiter in queue.waiters:
                waiter.future.cancel()
        self._queues.clear()

    async def _wait(self, target: Target, deadline: float, exclude: Collection[str]) -> Endpoint:
        queue = self._queues.get(target)
        if queue is None:
            queue = self._queues[target] = _Queue(lambda: self._expire(target))
        if len(queue.waiters) >= self._max_waiting:
            if not queue.waiters:
                self._drop(target, queue)
            raise self._throttle(target, "too many requests are waiting for capacity")
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), exclude, loop.time(), deadline)
        queue.waiters.append(waiter)
        queue.arm(deadline)
        self._report(target)
        self._signals.poke(target)
        if queue.waiters[0].exclude:
            # A free slot may exist that the waiters ahead excluded: hand it over now.
            # Behind a waiter that excludes nothing there is none (it would have been
            # handed one), and alone in the queue this waiter just found none itself, so
            # under sustained load, where most requests wait, the pass is skipped.
            self.capacity_changed(target)
        try:
            endpoint = await waiter.future
        except BaseException as exc:
            self._abandon(target, waiter)
            if isinstance(exc, TimeoutError):
                raise self._throttle(target, "no capacity became free in time") from None
            raise
        self._metrics.target(target).wait_seconds.observe(loop.time() - waiter.since)
        return endpoint

    def _abandon(self, target: Target, waiter: _Waiter) -> None:
        """The waiter timed out or its caller went away: leave the queue, and give
        back a slot that was handed over in the meantime."""
        future = waiter.future
        if future.done() and not future.cancelled() and future.exception() is None:
            self.release(future.result())
            return
        future.cancel()
        queue = self._queues.get(target)
        if queue is not None and waiter in queue.waiters:
            queue.waiters.remove(waiter)
            if not queue.waiters:
                self._drop(target, queue)
        self._report(target)

    def _expire(self, target: Target) -> None:
        """The queue's timer fired: every waiter whose deadline it was armed for, or an
        earlier one, times out; the timer is armed again for the earliest left."""
        queue = self._queues.get(target)
        if queue is None:
            return
        due = queue.expires_at
        queue.expiry = None
        left: collections.deque[_Waiter] = collections.deque()
        for waiter in queue.waiters:
            if waiter.future.done():
                continue
            if waiter.deadline <= due:
                waiter.future.set_exception(TimeoutError())
            else:
                left.append(waiter)
        queue.waiters = left
        if left:
            queue.arm(min(w.deadline for w in left))
        else:
            self._drop(target, queue)

    def _drop(self, target: Target, queue: _Queue) -> None:
        queue.disarm()
        if self._queues.get(target) is queue:
            del self._queues[target]

    def throttle(self, target: Target, why: str) -> errors.TooManyRequests:
        """The 429 for a request that found no capacity in time (logged; the metered
        invoker counts it)."""
        return self._throttle(target, why)

    def _throttle(self, target: Target, why: str) -> errors.TooManyRequests:
        log.info(
            "activator throttled namespace=%s function=%s version=%s reason=%s waiting=%d "
            "in_flight=%d",
            target.namespace,
            target.function_name,
            target.version,
            why,
            self.waiting(target),
            self.in_flight(target),
        )
        return errors.TooManyRequests(
            "Rate Exceeded.", reason=CONCURRENCY_LIMIT_REASON, retry_after=self._retry_after
        )

    def _report(self, target: Target) -> None:
        in_flight, waiting = self.load(target)
        self._signals.report(self._reporter, target, in_flight=in_flight, waiting=waiting)
