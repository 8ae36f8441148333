"""Commit tracking of out-of-order completions (kubelambda.kafka.tracker)."""

from __future__ import annotations

from kubelambda.kafka.tracker import CommitTracker, Handle

P0 = ("events", 0)
P1 = ("events", 1)


def tracker_with(*offsets: int) -> tuple[CommitTracker, dict[int, Handle]]:
    tracker = CommitTracker()
    tracker.assign([P0, P1])
    handles = {}
    for offset in offsets:
        handle = tracker.hand_out(P0, offset)
        assert handle is not None
        handles[offset] = handle
    return tracker, handles


def test_nothing_is_committable_before_a_completion() -> None:
    tracker, _ = tracker_with(10, 11)

    assert tracker.committable() == {}


def test_only_the_contiguous_prefix_is_committable() -> None:
    tracker, handles = tracker_with(10, 11, 12, 13)
    tracker.done(handles[10])
    tracker.done(handles[12])

    assert tracker.committable() == {P0: 11}

    tracker.done(handles[11])
    assert tracker.committable() == {P0: 13}

    tracker.done(handles[13])
    assert tracker.committable() == {P0: 14}


def test_a_commit_point_is_reported_once() -> None:
    tracker, handles = tracker_with(10, 11)
    tracker.done(handles[10])
    tracker.committed(tracker.committable())

    assert tracker.committable() == {}


def test_gaps_in_offsets_do_not_block_commits() -> None:
    tracker, handles = tracker_with(10, 15, 20)
    tracker.done(handles[10])
    tracker.done(handles[15])

    assert tracker.committable() == {P0: 20}


def test_partitions_are_tracked_apart() -> None:
    tracker, _ = tracker_with(10)
    other = tracker.hand_out(P1, 3)
    assert other is not None
    tracker.done(other)

    assert tracker.committable() == {P1: 4}


def test_revoke_returns_the_committable_offset_and_drops_later_completions() -> None:
    tracker, handles = tracker_with(10, 11)
    tracker.done(handles[10])

    assert tracker.revoke([P0]) == {P0: 11}
    assert tracker.done(handles[11]) is False
    assert not tracker.owns(handles[11])
    assert tracker.hand_out(P0, 12) is None


def test_a_reassigned_partition_ignores_handles_of_its_earlier_generation() -> None:
    tracker, handles = tracker_with(10)
    tracker.revoke([P0])
    tracker.assign([P0])
    fresh = tracker.hand_out(P0, 10)
    assert fresh is not None

    assert tracker.done(handles[10]) is False
    assert tracker.committable() == {}
    assert tracker.done(fresh) is True
    assert tracker.committable() == {P0: 11}


def test_a_commit_for_a_revoked_partition_is_ignored() -> None:
    tracker, handles = tracker_with(10)
    tracker.done(handles[10])
    offsets = tracker.committable()
    tracker.revoke([P0])

    tracker.committed(offsets)

    assert tracker.committable() == {}
