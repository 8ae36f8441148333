"""Function pods as the platform sees them: ready endpoints, ready counts, start failures.

One watch on the pods kubelambda manages (``workloads`` labels them) feeds both sides:
the gateway reads ``endpoints`` (it is the ``EndpointSource`` of Kubernetes mode) and
the controller's backend reads ``ready_instances`` and ``start_failure``. A pod counts
only when it is Ready *and runs the package its version runs now* (its package label
against the catalog), so once a ``$LATEST`` update reports Successful no invocation
reaches a pod of the old code, though Kubernetes is still rolling it away.

The gateway watches pods rather than EndpointSlices because a pod carries its package,
its instance concurrency and its function's Lambda name; a slice carries none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kubelambda import instance_tokens
from kubelambda.kubernetes import workloads
from kubelambda.kubernetes.informer import Informer
from kubelambda.models import Target
from kubelambda.ports.catalog import Catalog, CatalogSource
from kubelambda.ports.endpoints import Endpoint
from kubelambda.ports.instances import StartFailure

__all__ = ["PodWatch", "pod_failure"]

log = logging.getLogger(__name__)

# Waiting reasons that no retry cures: the image is not on the node (nothing is pulled).
_PERMANENT_REASONS = frozenset(
    {"ErrImageNeverPull", "InvalidImageName", "ErrImagePull", "ImagePullBackOff"}
)
_FAILING_REASONS = _PERMANENT_REASONS | {
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}


def pod_failure(pod: Mapping[str, Any]) -> StartFailure | None:
    """Why a pod cannot start, from its containers' statuses (``None`` while it is
    merely starting or waiting for a node)."""
    status = pod.get("status") or {}
    for container in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        state = container.get("state") or {}
        last = (container.get("lastState") or {}).get("terminated") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        restarts = int(container.get("restartCount") or 0)
        reason = waiting.get("reason") or ""
        if reason in _FAILING_REASONS:
            detail = last.get("message") or waiting.get("message") or reason
            return StartFailure(
                consecutive=max(restarts, 1),
                reason=f"{container.get('name')}: {reason}: {str(detail).strip()}",
                retriable=reason not in _PERMANENT_REASONS,
            )
        if terminated and terminated.get("exitCode", 0) != 0:
            detail = terminated.get("message") or terminated.get("reason") or "exited"
            return StartFailure(
                consecutive=restarts + 1,
                reason=f"{container.get('name')}: {str(detail).strip()}",
                retriable=True,
            )
    return None


def _is_ready(pod: Mapping[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if not status.get("podIP"):
        return False
    return any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in status.get("conditions") or []
    )


class PodWatch:
    def __init__(self, pods: Sequence[Informer], catalog: CatalogSource, *, key: bytes) -> None:
        self._pods = pods
        self._catalog_source = catalog
        self._key = key
        self._catalog = Catalog()
        self._endpoints: dict[Target, list[Endpoint]] = {}
        self._failures: dict[Target, StartFailure] = {}
        self._listeners: list[Callable[[Target], None]] = []
        self._unsubscribe: list[Callable[[], None]] = []

    async def start(self) -> None:
        """Returns once the first list of pods is in."""
        self._catalog = await self._catalog_source.catalog()
        self._unsubscribe.append(self._catalog_source.subscribe(self._on_catalog))
        for informer in self._pods:
            self._unsubscribe.append(informer.subscribe(self._refresh))
            await informer.start()
        self._refresh()

    async def aclose(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for informer in self._pods:
            await informer.aclose()

    def endpoints(self, target: Target) -> list[Endpoint]:
        return list(self._endpoints.get(target, ()))

    def subscribe(self, listener: Callable[[Target], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def ready_instances(self, target: Target) -> int:
        return len(self._endpoints.get(target, ()))

    def start_failure(self, target: Target) -> StartFailure | None:
        return self._failures.get(target)

    def _on_catalog(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._refresh()

    def _refresh(self) -> None:
        endpoints: dict[Target, list[Endpoint]] = {}
        failures: dict[Target, StartFailure] = {}
        pods = [item for informer in self._pods for item in informer.objects().items()]
        for (namespace, _name), pod in pods:
            target = workloads.target_of(pod.get("metadata") or {}, namespace)
            version = self._catalog.versions.get(target) if target else None
            if target is None or version is None:
                continue
            labels = pod["metadata"].get("labels") or {}
            running = workloads.package_label(version.running_package.sha256_hex)
            if labels.get(workloads.LABEL_PACKAGE) != running:
                continue
            if _is_ready(pod):
                endpoints.setdefault(target, []).append(self._endpoint(target, pod))
            elif (failure := pod_failure(pod)) is not None:
                known = failures.get(target)
                if known is None or failure.consecutive > known.consecutive:
                    failures[target] = failure
        changed = _changed_targets(self._endpoints, endpoints)
        self._endpoints = endpoints
        # A target with a ready pod has no current start failure (the port's contract).
        self._failures = {t: f for t, f in failures.items() if t not in endpoints}
        for target in changed:
            for listener in list(self._listeners):
                listener(target)

    def _endpoint(self, target: Target, pod: Mapping[str, Any]) -> Endpoint:
        annotations = pod["metadata"].get("annotations") or {}
        return Endpoint(
            target=target,
            instance_id=pod["metadata"]["name"],
            host=pod["status"]["podIP"],
            port=workloads.AGENT_PORT,
            concurrency=int(annotations.get(workloads.ANNOTATION_INSTANCE_CONCURRENCY, "1")),
            token=instance_tokens.invoke_token(self._key, target),
        )


def _changed_targets(
    before: Mapping[Target, Iterable[Endpoint]], after: Mapping[Target, Iterable[Endpoint]]
) -> set[Target]:
    return {
        target
        for target in set(before) | set(after)
        if {e.instance_id for e in before.get(target, ())}
        != {e.instance_id for e in after.get(target, ())}
    }
