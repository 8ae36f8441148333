"""The controller's side of cross-process scale signals: batches into its autoscaler.

Called by the controller process's HTTP app (``kubelambda.launch.cluster``) for each
authenticated batch, and every second to expire reporters: a gateway replica that
stopped posting (killed, rescheduled) must not hold demand up forever, so after
``reporter_ttl_seconds`` of silence its counts are reported as zero on its behalf.
Senders post at least every heartbeat while they hold anything, so a live reporter
never expires.
"""

from __future__ import annotations

import logging

from kubelambda.models import Target
from kubelambda.ports.signals import ScaleSignals
from kubelambda.signals import wire

__all__ = ["SignalReceiver"]

log = logging.getLogger(__name__)


class SignalReceiver:
    def __init__(self, signals: ScaleSignals, *, reporter_ttl_seconds: float = 10.0) -> None:
        self._signals = signals
        self._ttl = reporter_ttl_seconds
        self._last_heard: dict[str, float] = {}
        self._targets: dict[str, set[Target]] = {}

    def accept(self, batch: wire.Batch, *, now: float) -> None:
        reporter = batch.reporter
        if reporter not in self._last_heard:
            log.info("event=reporter_joined reporter=%s", reporter)
        self._last_heard[reporter] = now
        targets = self._targets.setdefault(reporter, set())
        for target, counts in batch.counts.items():
            # The port takes current counts and keeps its own peaks: the window's peaks
            # go first as if they were current, then what is current now.
            self._signals.report(
                reporter, target,
                in_flight=counts.peak_in_flight,
                waiting=max(0, counts.peak_demand - counts.peak_in_flight),
            )  # fmt: skip
            self._signals.report(
                reporter, target, in_flight=counts.in_flight, waiting=counts.waiting
            )
            if counts.in_flight or counts.waiting:
                targets.add(target)
            else:
                targets.discard(target)
        for target in batch.pokes:
            self._signals.poke(target)

    def expire(self, *, now: float) -> None:
        for reporter, heard in list(self._last_heard.items()):
            if now - heard <= self._ttl:
                continue
            held = self._targets.pop(reporter, set())
            del self._last_heard[reporter]
            log.warning(
                "event=reporter_expired reporter=%s silent_seconds=%.1f targets=%d",
                reporter, now - heard, len(held),
            )  # fmt: skip
            for target in held:
                self._signals.report(reporter, target, in_flight=0, waiting=0)
