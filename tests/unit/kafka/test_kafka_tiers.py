"""Delay tier choice and topic routing (kubelambda.kafka.tiers, kubelambda.kafka.settings)."""

from __future__ import annotations

import pytest

from kubelambda.kafka import tiers
from kubelambda.kafka.settings import DEFAULT_DELAY_TIERS, KafkaSettings

SETTINGS = KafkaSettings(bootstrap_servers="127.0.0.1:9092", topic_prefix="kl")


@pytest.mark.parametrize(
    ("remaining", "tier"),
    [
        (-5.0, None),
        (0.0, None),
        (0.999, None),
        (1.0, 1),
        (1.5, 1),
        (3.0, 2),
        (59.9, 30),
        (60.0, 60),
        (90.0, 60),
        (120.0, 120),
        (299.0, 120),
        (21_600.0, 300),
    ],
)
def test_delay_tier_is_the_largest_that_does_not_overshoot(
    remaining: float, tier: int | None
) -> None:
    assert tiers.delay_tier(remaining, DEFAULT_DELAY_TIERS) == tier


@pytest.mark.parametrize(
    ("not_before", "topic"),
    [
        (0.0, "kl-events"),
        (1000.4, "kl-events"),
        (1001.0, "kl-delay-1s"),
        (1060.0, "kl-delay-60s"),
        (1090.0, "kl-delay-60s"),
    ],
)
def test_topic_for_routes_due_events_to_the_events_topic(not_before: float, topic: str) -> None:
    assert tiers.topic_for(not_before, now=1000.0, settings=SETTINGS) == topic


def test_a_ninety_second_delay_hops_down_the_tiers_and_is_never_early() -> None:
    not_before, now, hops = 1090.0, 1000.0, []
    while (topic := tiers.topic_for(not_before, now=now, settings=SETTINGS)) != "kl-events":
        hops.append(topic)
        now += SETTINGS.delay_topics()[topic]
        assert now <= not_before

    assert hops == ["kl-delay-60s", "kl-delay-30s"]


def test_settings_name_topics_and_groups_from_their_prefixes() -> None:
    assert SETTINGS.events_topic == "kl-events"
    assert SETTINGS.timer_group_id == "kubelambda-dispatcher.timers"
    assert SETTINGS.delay_topics()["kl-delay-300s"] == 300
    assert len(SETTINGS.delay_topics()) == len(DEFAULT_DELAY_TIERS)


@pytest.mark.parametrize(
    "overrides",
    [
        {"bootstrap_servers": ""},
        {"partitions": 0},
        {"replication_factor": 0},
        {"produce_timeout": 0},
        {"max_in_flight": 0},
        {"batch_bytes": 0},
        {"delay_tiers": ()},
        {"delay_tiers": (5, 1)},
        {"delay_tiers": (1, 1, 2)},
        {"delay_tiers": (0, 1)},
    ],
)
def test_settings_refuse_bad_values(overrides: dict[str, object]) -> None:
    values: dict[str, object] = {"bootstrap_servers": "127.0.0.1:9092"} | overrides
    with pytest.raises(ValueError):
        KafkaSettings(**values)  # type: ignore[arg-type]
