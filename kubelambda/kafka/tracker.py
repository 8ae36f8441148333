"""Which offsets of the events topic may be committed, given deliveries complete out of order.

The events consumer hands deliveries out as it fetches them and the dispatcher completes
them in any order. A partition's committed offset may only move to the lowest offset
still outstanding: committing past a slow delivery would lose it in a crash, and not
committing a finished one only re-delivers it (at least once). Pure bookkeeping, no
client: ``EventConsumer`` feeds it fetches, completions and rebalances, and commits what
``committable`` returns.

    handed out 10 11 12 13, completed 10 12  → commit 11 (11 is outstanding)
    then 11 completes                         → commit 13
    then 13 completes                         → commit 14

A rebalance ends a partition's *generation*: ``revoke`` returns its last committable
offset and forgets it, and a completion whose handle carries an older generation is
dropped (its partition was handed to another consumer, which re-reads from the commit).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["CommitTracker", "Handle", "Partition"]

Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Handle:
    """What a ``Delivery`` carries so that its completion finds its partition and offset."""

    partition: Partition
    generation: int
    offset: int


@dataclass(slots=True)
class _State:
    generation: int
    outstanding: deque[int] = field(default_factory=deque)
    finished: set[int] = field(default_factory=set)
    # The offset after the last completed prefix, once anything completed.
    done_up_to: int | None = None
    committed: int | None = None

    def commit_point(self) -> int | None:
        if self.done_up_to is None:
            return None
        # Offsets may have gaps; the lowest outstanding one is as safe as the prefix's end.
        point = self.outstanding[0] if self.outstanding else self.done_up_to
        return None if point == self.committed else point


class CommitTracker:
    def __init__(self) -> None:
        self._partitions: dict[Partition, _State] = {}
        self._generation = 0

    def assign(self, partitions: Iterable[Partition]) -> None:
        """Start tracking newly assigned partitions (a fresh generation)."""
        self._generation += 1
        for partition in partitions:
            self._partitions.setdefault(partition, _State(self._generation))

    def revoke(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        """Stop tracking; what may still be committed for them before they go."""
        offsets: dict[Partition, int] = {}
        for partition in partitions:
            state = self._partitions.pop(partition, None)
            if state is not None and (point := state.commit_point()) is not None:
                offsets[partition] = point
        return offsets

    def hand_out(self, partition: Partition, offset: int) -> Handle | None:
        """Record a delivery about to be handed out; ``None`` when the partition is not ours."""
        state = self._partitions.get(partition)
        if state is None:
            return None
        state.outstanding.append(offset)
        return Handle(partition, state.generation, offset)

    def owns(self, handle: Handle) -> bool:
        state = self._partitions.get(handle.partition)
        return state is not None and state.generation == handle.generation

    def done(self, handle: Handle) -> bool:
        """Mark a delivery complete; ``False`` when its partition was revoked since."""
        state = self._partitions.get(handle.partition)
        if state is None or state.generation != handle.generation:
            return False
        state.finished.add(handle.offset)
        while state.outstanding and state.outstanding[0] in state.finished:
            offset = state.outstanding.popleft()
            state.finished.discard(offset)
            state.done_up_to = offset + 1
        return True

    def committable(self) -> dict[Partition, int]:
        """Offsets to commit now: partitions whose commit point moved since the last commit."""
        return {
            partition: point
            for partition, state in self._partitions.items()
            if (point := state.commit_point()) is not None
        }

    def committed(self, offsets: Mapping[Partition, int]) -> None:
        """Record a successful commit (partitions revoked meanwhile are ignored)."""
        for partition, offset in offsets.items():
            if (state := self._partitions.get(partition)) is not None:
                state.committed = offset
