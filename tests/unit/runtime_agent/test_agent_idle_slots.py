"""The stack of idle runtimes the invoke endpoint takes from: the latest to ask first,
stale entries skipped, and the stack kept bounded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from kubelambda_agent.slot import IdleSlots, Slot, SlotState


@dataclass(eq=False)
class _Slot:
    """What ``IdleSlots`` reads of a slot; hashed by identity, as a slot is."""

    name: str
    state: SlotState = SlotState.IDLE
    parked: bool = True


def _stack(slot_count: int) -> IdleSlots:
    return IdleSlots(slot_count)


def _push(idle: IdleSlots, *slots: _Slot) -> None:
    for slot in slots:
        idle.push(cast(Slot, slot))


def _taken(idle: IdleSlots) -> list[str]:
    names = []
    while (slot := idle.take()) is not None:
        names.append(cast(_Slot, slot).name)
        cast(_Slot, slot).state = SlotState.BUSY
    return names


def test_the_slot_that_asked_last_is_taken_first() -> None:
    idle = _stack(3)
    _push(idle, _Slot("a"), _Slot("b"), _Slot("c"))
    assert _taken(idle) == ["c", "b", "a"]
    assert idle.take() is None


def test_slots_that_left_idle_or_stopped_waiting_are_skipped() -> None:
    idle = _stack(4)
    busy, retired, unparked, waiting = _Slot("busy"), _Slot("retired"), _Slot("u"), _Slot("w")
    _push(idle, waiting, busy, retired, unparked)
    busy.state = SlotState.BUSY
    retired.state = SlotState.UNSTARTED
    unparked.parked = False
    assert _taken(idle) == ["w"]


def test_a_slot_pushed_again_is_taken_once_while_it_runs() -> None:
    idle = _stack(2)
    a, b = _Slot("a"), _Slot("b")
    _push(idle, a, b, a)
    assert _taken(idle) == ["a", "b"]


def test_stale_entries_are_dropped_past_twice_the_slots_keeping_the_order() -> None:
    idle = _stack(2)
    a, b = _Slot("a"), _Slot("b")
    # Each round trip through BUSY without a take (an invocation the slot's own
    # runtime start was waiting for) leaves a stale entry behind.
    for _ in range(10):
        _push(idle, a, b)
        a.state = b.state = SlotState.BUSY
        a.state = b.state = SlotState.IDLE
    _push(idle, b)
    assert len(idle) <= 2 * 2
    assert _taken(idle) == ["b", "a"]
