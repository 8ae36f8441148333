"""The pure rules of leader election on a Lease (kubelambda.kubernetes.election)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from kubelambda.kubernetes import election
from kubelambda.kubernetes.election import LeaseRecord

NOW = datetime(2026, 1, 2, 12, 0, 15, tzinfo=UTC)
JUST = timedelta(microseconds=1)


def held_by(holder: str, *, renewed: datetime | None, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        duration_seconds=duration,
        acquire_time=renewed,
        renew_time=renewed,
        transitions=3,
    )


@pytest.mark.parametrize(
    ("record", "allowed"),
    [
        (None, True),  # no Lease yet: create it
        (LeaseRecord(), True),  # a Lease nobody ever held
        (held_by("", renewed=NOW), True),  # released just now
        (held_by("me", renewed=NOW), True),  # ours: renew
        (held_by("me", renewed=NOW - timedelta(hours=1)), True),  # ours, even when expired
        (held_by("other", renewed=NOW), False),  # renewed now
        (held_by("other", renewed=NOW - timedelta(seconds=15)), False),  # expires exactly now
        (held_by("other", renewed=NOW - timedelta(seconds=15) - JUST), True),  # expired
        (held_by("other", renewed=NOW - timedelta(seconds=15) + JUST), False),
        (held_by("other", renewed=NOW - timedelta(seconds=2), duration=1), True),
        (held_by("other", renewed=None), True),  # a holder that never renewed claims nothing
        (held_by("other", renewed=NOW + timedelta(seconds=5)), False),  # clock ahead of ours
    ],
)
def test_may_acquire_a_free_own_or_expired_lease_only(
    record: LeaseRecord | None, allowed: bool
) -> None:
    assert election.may_acquire(record, identity="me", now=NOW) is allowed


def test_may_acquire_compares_instants_across_time_zones() -> None:
    plus_two = timezone(timedelta(hours=2))
    renewed = (NOW - timedelta(seconds=10)).astimezone(plus_two)
    assert not election.may_acquire(held_by("other", renewed=renewed), identity="me", now=NOW)


@pytest.mark.parametrize(
    ("lease_seconds", "duration"),
    [(15, 15), (2.5, 3), (0.2, 1)],
)
def test_a_claim_never_lasts_less_than_asked(lease_seconds: float, duration: int) -> None:
    record = LeaseRecord().with_holder("me", now=NOW, lease_seconds=lease_seconds)
    assert record.duration_seconds == duration


def test_renewing_keeps_the_acquire_time_and_the_transitions() -> None:
    acquired = NOW - timedelta(minutes=5)
    record = LeaseRecord(
        holder="me",
        duration_seconds=15,
        acquire_time=acquired,
        renew_time=NOW - timedelta(seconds=5),
        transitions=4,
    )
    renewed = record.with_holder("me", now=NOW, lease_seconds=20)
    assert renewed == LeaseRecord(
        holder="me", duration_seconds=20, acquire_time=acquired, renew_time=NOW, transitions=4
    )


@pytest.mark.parametrize("previous", ["other", ""])
def test_taking_over_stamps_a_new_acquire_time_and_counts_a_transition(previous: str) -> None:
    record = held_by(previous, renewed=NOW - timedelta(minutes=1))
    taken = record.with_holder("me", now=NOW, lease_seconds=15)
    assert taken == LeaseRecord(
        holder="me", duration_seconds=15, acquire_time=NOW, renew_time=NOW, transitions=4
    )


def test_a_created_lease_has_no_transition_yet_as_client_go_counts() -> None:
    created = LeaseRecord.created_by("me", now=NOW, lease_seconds=15)
    assert created == LeaseRecord(
        holder="me", duration_seconds=15, acquire_time=NOW, renew_time=NOW, transitions=0
    )


def test_taking_a_lease_nobody_ever_held_counts_a_transition() -> None:
    assert LeaseRecord().with_holder("me", now=NOW, lease_seconds=15).transitions == 1


def test_a_released_lease_has_no_holder_and_is_free_at_once() -> None:
    released = held_by("me", renewed=NOW - timedelta(seconds=3)).released(now=NOW)
    assert released.holder == ""
    assert released.transitions == 3
    assert released.duration_seconds == election.RELEASED_DURATION_SECONDS
    assert election.may_acquire(released, identity="other", now=NOW)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 1, 2, 12, 0, 15, tzinfo=UTC), "2026-01-02T12:00:15.000000Z"),
        (datetime(2026, 1, 2, 12, 0, 15, 42, tzinfo=UTC), "2026-01-02T12:00:15.000042Z"),
        (
            datetime(2026, 1, 2, 14, 0, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-02T12:00:15.123456Z",
        ),
    ],
)
def test_micro_time_is_utc_with_six_fractional_digits(moment: datetime, text: str) -> None:
    assert election.format_micro_time(moment) == text


def test_the_spec_carries_client_go_field_names_and_micro_times() -> None:
    record = LeaseRecord(
        holder="me", duration_seconds=15, acquire_time=NOW, renew_time=NOW, transitions=2
    )
    assert record.to_spec() == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-01-02T12:00:15.000000Z",
        "renewTime": "2026-01-02T12:00:15.000000Z",
        "leaseTransitions": 2,
    }
