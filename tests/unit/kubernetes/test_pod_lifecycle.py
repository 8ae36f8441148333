"""Pods become instance events once each: starts, readiness, failures, ready counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubelambda.kubernetes.pod_lifecycle import PodLifecycle
from kubelambda.models import Target

HELLO = Target("team-a", "hello", "$LATEST")
START = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


@dataclass
class Events:
    log: list[tuple[Any, ...]] = field(default_factory=list)

    def started(self, target: Target, *, initialization_type: str) -> None:
        self.log.append(("started", target, initialization_type))

    def became_ready(self, target: Target, *, seconds: float) -> None:
        self.log.append(("ready", target, seconds))

    def ready_count(self, target: Target, count: int) -> None:
        self.log.append(("count", target, count))

    def failed(self, target: Target, *, reason: str) -> None:
        self.log.append(("failed", target, reason))

    def deferred_count(self, target: Target, count: int) -> None:
        self.log.append(("deferred", target, count))


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def pod(
    uid: str,
    *,
    created: datetime,
    initialization: str = "on-demand",
    restarts: int = 0,
    last_reason: str | None = None,
    waiting: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"restartCount": restarts, "state": {}}
    if last_reason:
        status["lastState"] = {"terminated": {"reason": last_reason}}
    if waiting:
        status["state"] = {"waiting": {"reason": waiting}}
    return {
        "metadata": {"uid": uid, "creationTimestamp": created.isoformat().replace("+00:00", "Z")},
        "spec": {
            "containers": [
                {"env": [{"name": "AWS_LAMBDA_INITIALIZATION_TYPE", "value": initialization}]}
            ]
        },
        "status": {"containerStatuses": [status]},
    }


def test_a_new_pod_starts_becomes_ready_and_goes() -> None:
    events, clock = Events(), Clock()
    lifecycle = PodLifecycle(events, clock=clock)
    new = pod("a", created=START + timedelta(seconds=1), initialization="provisioned-concurrency")
    clock.now = START + timedelta(seconds=1)
    lifecycle.observe([(HELLO, new, False)])
    clock.now = START + timedelta(seconds=3)
    lifecycle.observe([(HELLO, new, True)])
    lifecycle.observe([(HELLO, new, True)])
    lifecycle.observe([])
    lifecycle.observe([])
    assert events.log == [
        ("started", HELLO, "provisioned-concurrency"),
        ("ready", HELLO, 2.0),
        ("count", HELLO, 1),
        ("count", HELLO, 1),
        ("count", HELLO, 0),
    ]


def test_a_pod_older_than_the_watch_is_counted_but_not_started_again() -> None:
    events, clock = Events(), Clock()
    lifecycle = PodLifecycle(events, clock=clock)
    lifecycle.observe([(HELLO, pod("old", created=START - timedelta(minutes=5)), True)])
    assert events.log == [("count", HELLO, 1)]


def test_restarts_and_a_stuck_pod_are_failures_once_each() -> None:
    events, clock = Events(), Clock()
    lifecycle = PodLifecycle(events, clock=clock)
    lifecycle.observe([(HELLO, pod("a", created=START), False)])
    crashed = pod("a", created=START, restarts=2, last_reason="OOMKilled")
    lifecycle.observe([(HELLO, crashed, False)])
    lifecycle.observe([(HELLO, crashed, False)])
    stuck = pod("b", created=START, waiting="ImagePullBackOff")
    lifecycle.observe([(HELLO, crashed, False), (HELLO, stuck, False)])
    lifecycle.observe([(HELLO, crashed, False), (HELLO, stuck, False)])
    failures = [entry for entry in events.log if entry[0] == "failed"]
    assert failures == [
        ("failed", HELLO, "OOMKilled"),
        ("failed", HELLO, "OOMKilled"),
        ("failed", HELLO, "ImagePullBackOff"),
    ]


def unschedulable(uid: str, *, created: datetime) -> dict[str, Any]:
    """A pod as the scheduler leaves one it cannot place: Pending, no container statuses."""
    return {
        "metadata": {"uid": uid, "creationTimestamp": created.isoformat().replace("+00:00", "Z")},
        "spec": {"containers": [{}]},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient memory.",
                }
            ],
        },
    }


def test_an_unschedulable_pod_is_a_deferred_start_not_a_failure() -> None:
    events, clock = Events(), Clock()
    lifecycle = PodLifecycle(events, clock=clock)
    waiting = unschedulable("a", created=START)
    lifecycle.observe([(HELLO, waiting, False)])
    lifecycle.observe([(HELLO, waiting, False)])
    lifecycle.observe([])

    assert events.log == [
        ("started", HELLO, "on-demand"),
        ("deferred", HELLO, 1),
        ("deferred", HELLO, 1),
        ("deferred", HELLO, 0),
    ]
