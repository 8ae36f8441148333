"""Instance events from pods: starts, readiness, failures, ready counts per version.

Called by ``PodWatch`` on every refresh (in the controller process only: the events feed
the controller's metrics) with each current pod of a catalog version and whether it
serves. A pod counts as started once, when first seen, if it was created after this
process began watching (an older one was counted by the process that saw it start);
it counts as ready once, with the time from its creation; a container restart, or a
pod stuck on a reason that will not pass (a missing image, a bad config), counts as a
failure with the kubelet's reason.

A pod the scheduler cannot place (Pending, condition PodScheduled False for the reason
Unschedulable) is not a failure: the cluster has no room for it now, as the embedded
host's budget defers a start. Such pods are counted per version as deferred starts
while they wait; the gateway's activator holds their requests and answers 429 after its
bounded wait, as it does for any start that takes too long.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubelambda.models import Target
from kubelambda.ports.instances import InstanceEvents

__all__ = ["PodLifecycle"]

_INITIALIZATION_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"
# Waiting reasons that do not pass by themselves: one failure per pod.
_STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass(slots=True)
class _Seen:
    target: Target
    counted: bool
    ready: bool = False
    restarts: int = 0
    stuck: bool = False


class PodLifecycle:
    def __init__(
        self, events: InstanceEvents, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._events = events
        self._clock = clock
        # Creation times have whole seconds: a pod made in our first second is ours.
        self._since = clock().replace(microsecond=0)
        self._pods: dict[str, _Seen] = {}
        self._reported: set[Target] = set()
        self._unschedulable: set[Target] = set()

    def observe(self, pods: Iterable[tuple[Target, Mapping[str, Any], bool]]) -> None:
        """The current pods of catalog versions, each with whether it serves now."""
        now = self._clock()
        live: set[str] = set()
        ready: dict[Target, int] = {}
        unschedulable: dict[Target, int] = {}
        for target, pod, serving in pods:
            uid = pod["metadata"]["uid"]
            live.add(uid)
            created = _created(pod) or now
            seen = self._pods.get(uid)
            if seen is None:
                seen = self._pods[uid] = _Seen(target, counted=created >= self._since)
                if seen.counted:
                    self._events.started(target, initialization_type=_initialization_type(pod))
            if serving:
                ready[target] = ready.get(target, 0) + 1
                if not seen.ready:
                    seen.ready = True
                    if seen.counted:
                        seconds = max(0.0, (now - created).total_seconds())
                        self._events.became_ready(target, seconds=seconds)
            self._failures(seen, pod)
            if not serving and _unschedulable(pod):
                unschedulable[target] = unschedulable.get(target, 0) + 1
        for uid in [uid for uid in self._pods if uid not in live]:
            del self._pods[uid]
        for target in self._reported | ready.keys():
            self._events.ready_count(target, ready.get(target, 0))
        self._reported = set(ready)
        for target in self._unschedulable | unschedulable.keys():
            self._events.deferred_count(target, unschedulable.get(target, 0))
        self._unschedulable = set(unschedulable)

    def _failures(self, seen: _Seen, pod: Mapping[str, Any]) -> None:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            restarts = int(container.get("restartCount") or 0)
            if restarts > seen.restarts:
                last = (container.get("lastState") or {}).get("terminated") or {}
                for _ in range(restarts - seen.restarts):
                    self._events.failed(seen.target, reason=str(last.get("reason") or "Error"))
                seen.restarts = restarts
            waiting = ((container.get("state") or {}).get("waiting") or {}).get("reason")
            if waiting in _STUCK_REASONS and not seen.stuck:
                seen.stuck = True
                self._events.failed(seen.target, reason=str(waiting))


def _unschedulable(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled":
            return bool(
                condition.get("status") == "False" and condition.get("reason") == "Unschedulable"
            )
    return False


def _created(pod: Mapping[str, Any]) -> datetime | None:
    stamp = pod["metadata"].get("creationTimestamp")
    if not isinstance(stamp, str):
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _initialization_type(pod: Mapping[str, Any]) -> str:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for variable in container.get("env") or []:
            if variable.get("name") == _INITIALIZATION_TYPE and variable.get("value"):
                return str(variable["value"])
    return "on-demand"
