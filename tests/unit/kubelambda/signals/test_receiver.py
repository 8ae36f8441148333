"""The receiver replays a batch's peaks and current counts, and expires silent reporters."""

from __future__ import annotations

from kubelambda.models import Target
from kubelambda.signals import wire
from kubelambda.signals.receiver import SignalReceiver
from tests.recorded_signals import RecordedSignals

HELLO = Target("team-a", "hello", "$LATEST")


def batch(reporter: str, counts: wire.Counts, *, poke: bool = False) -> wire.Batch:
    return wire.Batch(reporter, {HELLO: counts}, frozenset({HELLO} if poke else set()))


def test_peaks_go_first_then_the_current_counts() -> None:
    recorded = RecordedSignals()
    receiver = SignalReceiver(recorded)
    receiver.accept(
        batch(
            "g1", wire.Counts(in_flight=1, waiting=0, peak_in_flight=4, peak_demand=6), poke=True
        ),
        now=0.0,
    )
    assert recorded.reports == [("g1", HELLO, 4, 2), ("g1", HELLO, 1, 0)]
    assert recorded.pokes == [HELLO]


def test_a_silent_reporter_is_zeroed_and_a_live_one_is_not() -> None:
    recorded = RecordedSignals()
    receiver = SignalReceiver(recorded, reporter_ttl_seconds=10.0)
    receiver.accept(batch("gone", wire.Counts(2, 1, 2, 3)), now=0.0)
    receiver.accept(batch("live", wire.Counts(1, 0, 1, 1)), now=0.0)
    receiver.accept(batch("live", wire.Counts(1, 0, 1, 1)), now=8.0)
    recorded.reports.clear()
    receiver.expire(now=10.5)
    assert recorded.reports == [("gone", HELLO, 0, 0)]
    receiver.expire(now=11.0)
    assert recorded.reports == [("gone", HELLO, 0, 0)]


def test_a_reporter_at_rest_has_nothing_to_expire() -> None:
    recorded = RecordedSignals()
    receiver = SignalReceiver(recorded, reporter_ttl_seconds=1.0)
    receiver.accept(batch("g1", wire.Counts(0, 0, 1, 1)), now=0.0)
    recorded.reports.clear()
    receiver.expire(now=5.0)
    assert recorded.reports == []
