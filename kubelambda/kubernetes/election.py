"""The pure rules of leader election on a ``coordination.k8s.io/v1`` Lease, without I/O.

``leader.LeaderElector`` reads a Lease, turns its spec into a ``LeaseRecord``, asks
``may_acquire`` whether it may write itself in as holder, and writes back the record that
``with_holder`` (acquire or renew), ``created_by`` or ``released`` returns, rendered by
``to_spec``. The
fields and their meaning are client-go's ``leaderelection`` ones, so a kubelambda controller
and any client-go elector can share a Lease:

    holderIdentity        who leads; empty when the last holder released the Lease
    leaseDurationSeconds  how long the holder's claim lasts after its renewTime
    acquireTime           when the current holder took the Lease (kept on renewals)
    renewTime             when the holder last wrote the Lease
    leaseTransitions      how many times the holder changed

A Lease may be taken when it is free (no holder), already ours, or expired:
renewTime + leaseDurationSeconds < now. For example, renewTime 12:00:00.000000 with a
15 s duration is held until 12:00:15.000000; at 12:00:15.000001 anyone may take it.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["LeaseRecord", "format_micro_time", "may_acquire"]

# Seconds a released Lease claims, as client-go writes on release; with no holder it is
# free at once anyway, the duration only has to be a valid positive number.
RELEASED_DURATION_SECONDS = 1


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The election fields of a Lease's spec; ``holder`` is "" when nobody holds it."""

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0

    @classmethod
    def created_by(cls, identity: str, *, now: datetime, lease_seconds: float) -> LeaseRecord:
        """The record of a Lease that ``identity`` creates: no transition yet."""
        return dataclasses.replace(
            cls().with_holder(identity, now=now, lease_seconds=lease_seconds), transitions=0
        )

    def expires_at(self) -> datetime | None:
        """When the holder's claim runs out; None when the Lease was never renewed."""
        if self.renew_time is None:
            return None
        return self.renew_time + timedelta(seconds=self.duration_seconds)

    def with_holder(self, identity: str, *, now: datetime, lease_seconds: float) -> LeaseRecord:
        """The record after ``identity`` writes itself in at ``now``: a renewal keeps the
        acquire time and the transition count, a change of holder starts both anew."""
        duration = math.ceil(lease_seconds)  # never claim less than was asked for
        if identity == self.holder:
            return dataclasses.replace(self, duration_seconds=duration, renew_time=now)
        return LeaseRecord(
            holder=identity,
            duration_seconds=duration,
            acquire_time=now,
            renew_time=now,
            transitions=self.transitions + 1,
        )

    def released(self, *, now: datetime) -> LeaseRecord:
        """The record a holder leaves behind on release: no holder, free at once."""
        return LeaseRecord(
            holder="",
            duration_seconds=RELEASED_DURATION_SECONDS,
            acquire_time=now,
            renew_time=now,
            transitions=self.transitions,
        )

    def to_spec(self) -> dict[str, Any]:
        """The Lease spec fields this record owns, as the apiserver reads them."""
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "acquireTime": None
            if self.acquire_time is None
            else format_micro_time(self.acquire_time),
            "renewTime": None if self.renew_time is None else format_micro_time(self.renew_time),
            "leaseTransitions": self.transitions,
        }


def may_acquire(record: LeaseRecord | None, *, identity: str, now: datetime) -> bool:
    """Whether ``identity`` may write itself in as holder of the Lease ``record`` at ``now``
    (None: there is no Lease yet)."""
    if record is None or record.holder in ("", identity):
        return True
    expires_at = record.expires_at()
    # A holder that never stamped a renewTime has no claim to defend.
    return expires_at is None or expires_at < now


def format_micro_time(moment: datetime) -> str:
    """A ``metav1.MicroTime``: RFC 3339 in UTC with exactly six fractional digits, which
    ``datetime.isoformat`` drops when the microseconds are zero (the apiserver then refuses
    the value)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
