"""Which topic an event goes to, by how long it still has to wait. Pure.

Due now (less than the smallest tier away) → the events topic; the consumer holds the
sub-tier remainder in memory, so an event never runs early. Otherwise → the largest
tier that does not overshoot: the tier's forwarder sends it on after that many seconds,
to the next tier down or to the events topic. A 90 s retry with the default tiers hops
60 s → 30 s → events; 3 s hops 2 s → 1 s → events. Every hop waits at most what is left,
so the event is never late by more than the hops' produce latency.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubelambda.kafka.settings import KafkaSettings

__all__ = ["delay_tier", "topic_for"]


def delay_tier(remaining: float, tiers: Sequence[int]) -> int | None:
    """The largest tier not above ``remaining`` seconds; ``None`` when none fits (due now).

    >>> delay_tier(90, (1, 2, 5, 10, 30, 60, 120, 300))
    60
    >>> delay_tier(0.5, (1, 2, 5)) is None
    True
    """
    fitting = [tier for tier in tiers if tier <= remaining]
    return fitting[-1] if fitting else None


def topic_for(not_before: float, *, now: float, settings: KafkaSettings) -> str:
    """The topic an event due at ``not_before`` (epoch seconds) goes to at ``now``."""
    tier = delay_tier(not_before - now, settings.delay_tiers)
    return settings.events_topic if tier is None else settings.delay_topic(tier)
