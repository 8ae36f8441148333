"""``ScaleSignals`` for a gateway or dispatcher whose autoscaler runs in another process.

Used by the in-cluster gateway and dispatcher (``kubelambda.launch.cluster``). ``report``
and ``poke`` only record and wake, as the port requires (the invoke path never waits on
the network); a background task posts one batch per wake to the controller: at once
when a target was poked (a request is held until an instance exists), else after a
short coalescing delay, and at least every ``heartbeat_seconds`` while anything is in
flight or held, so the receiver can tell a live reporter from one that went away. A
failed post keeps everything for the next one: pokes are not lost while the controller
changes leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import aiohttp

from kubelambda.models import Target
from kubelambda.signals import wire

__all__ = ["SignalSender"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Window:
    """A target's counts since the last batch that reached the controller."""

    in_flight: int = 0
    waiting: int = 0
    peak_in_flight: int = 0
    peak_demand: int = 0

    def counts(self) -> wire.Counts:
        return wire.Counts(self.in_flight, self.waiting, self.peak_in_flight, self.peak_demand)

    @property
    def idle(self) -> bool:
        return self.peak_demand == 0


class SignalSender:
    """Posts this process's scale signals to ``url`` (the controller Service)."""

    def __init__(
        self,
        url: str,
        *,
        key: bytes,
        reporter: str,
        coalesce_seconds: float = 0.05,
        heartbeat_seconds: float = 2.0,
        retry_seconds: float = 0.5,
        request_timeout_seconds: float = 2.0,
    ) -> None:
        self._endpoint = url.rstrip("/") + wire.PATH
        self._headers = {
            "Authorization": f"Bearer {wire.token(key)}",
            "Content-Type": "application/json",
        }
        self._reporter = reporter
        self._coalesce = coalesce_seconds
        self._heartbeat = heartbeat_seconds
        self._retry = retry_seconds
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_seconds)
        self._windows: dict[Target, _Window] = {}
        self._pokes: set[Target] = set()
        self._wake = asyncio.Event()
        self._urgent = False
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing_since: float | None = None

    # -- ScaleSignals -------------------------------------------------------------------

    def report(self, reporter: str, target: Target, *, in_flight: int, waiting: int) -> None:
        # One sender per process: ``reporter`` is this process's id, given at construction.
        window = self._windows.get(target)
        if window is None:
            window = self._windows[target] = _Window()
        window.in_flight, window.waiting = in_flight, waiting
        window.peak_in_flight = max(window.peak_in_flight, in_flight)
        window.peak_demand = max(window.peak_demand, in_flight + waiting)
        self._wake.set()

    def poke(self, target: Target) -> None:
        self._pokes.add(target)
        self._urgent = True
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._task = asyncio.create_task(self._run(), name="scale-signal-sender")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat):
                    await self._wake.wait()
            if not self._urgent:
                # Reports come in bursts (every request start and end): one batch for them.
                await asyncio.sleep(self._coalesce)
            self._wake.clear()
            self._urgent = False
            if not self._windows and not self._pokes:
                continue
            if not await self._post():
                await asyncio.sleep(self._retry)
                self._wake.set()

    async def _post(self) -> bool:
        """Send what is pending; on success forget what the controller now knows."""
        assert self._session is not None
        sent_pokes = frozenset(self._pokes)
        sent = {target: window.counts() for target, window in self._windows.items()}
        batch = wire.Batch(self._reporter, sent, sent_pokes)
        try:
            async with self._session.post(
                self._endpoint, data=wire.encode(batch), headers=self._headers
            ) as response:
                if response.status != 204:
                    raise aiohttp.ClientResponseError(
                        response.request_info, (), status=response.status,
                        message=(await response.text())[:200],
                    )  # fmt: skip
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._note_failure(exc)
            return False
        if self._failing_since is not None:
            log.info(
                "event=signals_delivered_again url=%s after_seconds=%.1f",
                self._endpoint, time.monotonic() - self._failing_since,
            )  # fmt: skip
            self._failing_since = None
        self._pokes -= sent_pokes
        for target, counts in sent.items():
            window = self._windows[target]
            # The next window starts at what is current now, unless a higher peak came
            # while the batch was on its way.
            if window.peak_in_flight <= counts.peak_in_flight:
                window.peak_in_flight = window.in_flight
            if window.peak_demand <= counts.peak_demand:
                window.peak_demand = window.in_flight + window.waiting
            if window.idle and counts.in_flight == 0 and counts.waiting == 0:
                # The controller has seen this target at rest: nothing to repeat.
                del self._windows[target]
        return True

    def _note_failure(self, exc: BaseException) -> None:
        # Logged once per outage (a post is retried every retry_seconds meanwhile).
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning(
                "event=signals_undelivered url=%s error=%r pending_pokes=%d",
                self._endpoint, exc, len(self._pokes),
            )  # fmt: skip
