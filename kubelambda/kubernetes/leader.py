"""Leader election on a ``coordination.k8s.io/v1`` Lease: only one controller replica acts.

The controller's launch function wraps its work (autoscaler, reconcilers) in one
``lead()`` coroutine function and awaits ``LeaderElector(...).run(lead)``. Every replica
runs the same loop:

    acquiring ── Lease free, ours or expired: write ourselves in ──▶ leading
        ▲                                                            │ lead() runs as a task;
        │                                                            │ renew every renew_seconds
        └── Lease taken by another, or no renewal for ───────────────┘
            lease_seconds - renew_seconds: cancel lead()

Each write replaces the Lease guarded by the resourceVersion just read, so of two replicas
writing at once the apiserver lets one win and answers the other 409 Conflict. The rules
(who may take a Lease, what a renewal or release writes) are the pure ``election`` module.

A leader gives up one renewal period before the Lease it last wrote expires for the others,
so ``lead()`` is cancelled before anyone else can start leading. Cancelling ``run()``
cancels ``lead()`` and then releases the Lease (no holder), so a standby takes over at its
next attempt instead of waiting for expiry. When ``lead()`` ends by itself, ``run()``
releases the Lease and returns its result or raises its error: the elector does not retry
the work it guards.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from kubelambda.kubernetes import election

__all__ = ["LeaderElector"]

log = logging.getLogger(__name__)

# Errors that mean "this attempt failed, the next one may not": the apiserver answered
# with an error, could not be reached, or did not answer in time.
ATTEMPT_ERRORS = (client.ApiException, aiohttp.ClientError, OSError, TimeoutError)
# Pause after a failed renewal before the next try (capped by renew_seconds): a leader gets
# several tries before its deadline instead of one per renewal period.
RETRY_SECONDS = 1.0


class _Claim(enum.Enum):
    HELD = "held"  # the Lease now names us
    TAKEN = "taken"  # another holder's claim is valid
    RACED = "raced"  # someone wrote between our read and our write (409)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """Runs a coroutine only while this replica holds the Lease ``namespace``/``name``."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float = 15,
        renew_seconds: float = 5,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not identity:
            raise ValueError("a leader elector needs a non-empty identity")
        if not 0 < renew_seconds < lease_seconds:
            raise ValueError(
                f"renew_seconds ({renew_seconds}) must be positive and below "
                f"lease_seconds ({lease_seconds}): a leader renews before its Lease expires"
            )
        self._leases = client.CoordinationV1Api(api)
        self._serialize = api.sanitize_for_serialization
        self._namespace = namespace
        self._name = name
        self._identity = identity
        self._lease_seconds = lease_seconds
        self._renew_seconds = renew_seconds
        self._clock = clock
        self._is_leader = False

    @property
    def is_leader(self) -> bool:
        """True while ``lead()`` runs under a Lease this replica holds."""
        return self._is_leader

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Acquire the Lease, run ``lead()`` while renewing it, and start over when it is
        lost; until cancelled, or until ``lead()`` ends by itself."""
        try:
            while True:
                renewed_at = await self._acquire()
                if await self._lead(lead, renewed_at=renewed_at):
                    return
        finally:
            if self._is_leader:
                self._is_leader = False
                await self._release()

    async def _acquire(self) -> float:
        """Try every renew_seconds until the Lease names us; the monotonic time of the write."""
        while True:
            attempted_at = time.monotonic()
            try:
                async with asyncio.timeout(self._lease_seconds):
                    claim, record = await self._claim()
            except ATTEMPT_ERRORS as exc:
                log.warning("event=lease_acquire_failed %s error=%s", self._describe(), _brief(exc))
            else:
                if claim is _Claim.HELD:
                    log.info(
                        "event=lease_acquired %s transitions=%d",
                        self._describe(),
                        record.transitions,
                    )
                    return attempted_at
            await asyncio.sleep(self._renew_seconds)

    async def _lead(self, lead: Callable[[], Awaitable[None]], *, renewed_at: float) -> bool:
        """Run ``lead()`` while renewing; True when it ended by itself, False when the Lease
        was lost (``lead()`` is then cancelled)."""
        self._is_leader = True
        task = asyncio.ensure_future(lead())
        try:
            if await self._renew_while(task, renewed_at=renewed_at):
                task.result()  # raises what lead() raised
                return True
            self._is_leader = False
            return False
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _renew_while(self, task: asyncio.Future[None], *, renewed_at: float) -> bool:
        """Renew until ``task`` ends (True) or the Lease is lost (False)."""
        deadline = renewed_at + self._lease_seconds - self._renew_seconds
        next_at = renewed_at + self._renew_seconds
        while True:
            await asyncio.wait({task}, timeout=max(0.0, next_at - time.monotonic()))
            if task.done():
                return True
            attempted_at = time.monotonic()
            try:
                # An answer after the deadline is of no use: lead() must stop by then.
                async with asyncio.timeout(max(0.0, deadline - attempted_at)):
                    claim, record = await self._claim()
            except ATTEMPT_ERRORS as exc:
                log.warning("event=lease_renew_failed %s error=%s", self._describe(), _brief(exc))
                claim = _Claim.RACED
            if claim is _Claim.HELD:
                deadline = attempted_at + self._lease_seconds - self._renew_seconds
                next_at = attempted_at + self._renew_seconds
                continue
            if claim is _Claim.TAKEN:
                log.warning(
                    "event=lease_lost %s reason=taken holder=%s", self._describe(), record.holder
                )
                return False
            if time.monotonic() >= deadline:
                log.warning("event=lease_lost %s reason=renew_deadline", self._describe())
                return False
            next_at = min(deadline, time.monotonic() + min(RETRY_SECONDS, self._renew_seconds))

    async def _claim(self) -> tuple[_Claim, election.LeaseRecord]:
        """One read and one guarded write of the Lease naming us as holder; with the record
        written (held) or read (taken, raced)."""
        now = self._clock()
        try:
            lease = await self._leases.read_namespaced_lease(self._name, self._namespace)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            return await self._create(now)
        current = _record_of(lease.spec)
        if not election.may_acquire(current, identity=self._identity, now=now):
            return _Claim.TAKEN, current
        wanted = current.with_holder(self._identity, now=now, lease_seconds=self._lease_seconds)
        try:
            await self._leases.replace_namespaced_lease(
                self._name, self._namespace, self._body(lease, wanted)
            )
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            return _Claim.RACED, current
        return _Claim.HELD, wanted

    async def _create(self, now: datetime) -> tuple[_Claim, election.LeaseRecord]:
        record = election.LeaseRecord.created_by(
            self._identity, now=now, lease_seconds=self._lease_seconds
        )
        body = _lease_body({"name": self._name, "namespace": self._namespace}, record.to_spec())
        try:
            await self._leases.create_namespaced_lease(self._namespace, body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            return _Claim.RACED, election.LeaseRecord()
        return _Claim.HELD, record

    async def _release(self) -> None:
        """Leave the Lease without a holder if it still names us; bounded in time, since it
        runs while the process shuts down."""
        try:
            async with asyncio.timeout(self._renew_seconds):
                lease = await self._leases.read_namespaced_lease(self._name, self._namespace)
                current = _record_of(lease.spec)
                if current.holder != self._identity:
                    return
                released = current.released(now=self._clock())
                await self._leases.replace_namespaced_lease(
                    self._name, self._namespace, self._body(lease, released)
                )
        except ATTEMPT_ERRORS as exc:
            log.warning("event=lease_release_failed %s error=%s", self._describe(), _brief(exc))
            return
        log.info("event=lease_released %s", self._describe())

    def _body(self, lease: client.V1Lease, record: election.LeaseRecord) -> Any:
        """The Lease as read (its resourceVersion guards the write) with ``record``'s fields;
        managedFields are left to the apiserver, other spec fields are kept."""
        body: dict[str, Any] = self._serialize(lease)
        metadata = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
        return _lease_body(metadata, {**body.get("spec", {}), **record.to_spec()})

    def _describe(self) -> str:
        return f"lease={self._namespace}/{self._name} identity={self._identity}"


def _lease_body(metadata: dict[str, Any], spec: dict[str, Any]) -> Any:
    """A Lease as a dict, which the client sends as it is; it would serialise a V1Lease's
    times with ``isoformat``, which drops the microseconds a MicroTime must carry when they
    are zero, and the apiserver refuses such a Lease."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": spec,
    }


def _record_of(spec: client.V1LeaseSpec | None) -> election.LeaseRecord:
    if spec is None:
        return election.LeaseRecord()
    return election.LeaseRecord(
        holder=spec.holder_identity or "",
        duration_seconds=spec.lease_duration_seconds or 0,
        acquire_time=spec.acquire_time,
        renew_time=spec.renew_time,
        transitions=spec.lease_transitions or 0,
    )


def _brief(exc: BaseException) -> str:
    """An error in one line: an ApiException's str() spans headers and body."""
    if isinstance(exc, client.ApiException):
        return f"{exc.status} {exc.reason}"
    return repr(exc)
