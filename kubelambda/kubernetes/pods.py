"""Function pods as the platform sees them: ready endpoints, ready counts, start failures.

One watch on the pods kubelambda manages (``workloads`` labels them) feeds both sides:
the gateway reads ``endpoints`` (it is the ``EndpointSource`` of Kubernetes mode) and
the controller's backend reads ``ready_instances`` and ``start_failure``. A pod counts
only when it is Ready *and runs the package its version runs now* (its package label
against the catalog), so once a ``$LATEST`` update reports Successful no invocation
reaches a pod of the old code, though Kubernetes is still rolling it away.

The gateway watches pods rather than EndpointSlices because a pod carries its package,
its instance concurrency and its function's Lambda name; a slice carries none of them.

A starting pod is probed here too, as Knative's activator does: from the moment it has an
address, ``GET /ready`` on its agent every ``probe_interval`` until it answers. The
kubelet probes at most once a second and reports through the apiserver, which adds up
to a second to every cold start; a pod that answered here is an endpoint at once. Once
the kubelet has called a pod Ready, its word is final (a pod it later calls unready
leaves, whatever it answered here before). Faster still, a pod's agent announces itself
when ready (``announced``; the kubelet reports a new pod's address only at its next
relist, up to a second later): an announcement whose proof the version's invoke token
confirms makes the pod an endpoint at the address it gives.

In the controller's process a ``PodLifecycle`` sees every refresh too, and turns pods
into instance events (starts, readiness, failures) for the controller's metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kubelambda_agent import protocol

from kubelambda import instance_tokens
from kubelambda.kubernetes import workloads
from kubelambda.kubernetes.informer import Informer
from kubelambda.kubernetes.pod_lifecycle import PodLifecycle
from kubelambda.models import Target
from kubelambda.ports.catalog import Catalog, CatalogSource
from kubelambda.ports.endpoints import Endpoint
from kubelambda.ports.instances import StartFailure

__all__ = ["PodWatch", "pod_failure"]

log = logging.getLogger(__name__)

# One probe's wait for an answer; a starting agent refuses connections rather than hangs.
_PROBE_TIMEOUT = 0.5
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
            # A crash loop's own message is only the back-off; the crash says why.
            if reason == "CrashLoopBackOff":
                detail = last.get("message") or last.get("reason") or reason
            else:
                detail = waiting.get("message") or reason
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


def _condition(pod: Mapping[str, Any], kind: str) -> str | None:
    """The status of the pod's condition ``kind`` ("True", "False"), if it has one."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None


def _address(pod: Mapping[str, Any], announced: Mapping[str, str]) -> str | None:
    """Where a live pod's agent listens: its reported address, else the one its agent
    announced (``None`` before either, or once it is being deleted)."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    if status.get("phase") not in (None, "Pending", "Running"):
        return None
    address = status.get("podIP") or announced.get(pod["metadata"]["uid"])
    return address if isinstance(address, str) and address else None


async def answers_ready(host: str, port: int) -> bool:
    """Whether the agent at ``host:port`` answers ``GET /ready`` with 200 (the caller
    bounds the wait)."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    try:
        writer.write(b"GET /ready HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
        status_line = await reader.readline()
    except OSError:
        return False
    finally:
        writer.close()
    return status_line.startswith(b"HTTP/1.1 200 ")


class PodWatch:
    def __init__(
        self,
        pods: Sequence[Informer],
        catalog: CatalogSource,
        *,
        key: bytes,
        probe_interval: float = 0.02,
        lifecycle: PodLifecycle | None = None,
    ) -> None:
        self._pods = pods
        self._lifecycle = lifecycle
        self._catalog_source = catalog
        self._key = key
        self._probe_interval = probe_interval
        self._catalog = Catalog()
        self._endpoints: dict[Target, list[Endpoint]] = {}
        self._failures: dict[Target, StartFailure] = {}
        self._listeners: list[Callable[[Target], None]] = []
        self._unsubscribe: list[Callable[[], None]] = []
        # Pods (by uid) that answered our probe, that the kubelet has called Ready, and
        # the probes running now.
        self._answered: set[str] = set()
        self._announced: dict[str, str] = {}
        self._kubelet_ready: set[str] = set()
        self._probes: dict[str, asyncio.Task[None]] = {}

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
        probes = list(self._probes.values())
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)

    def endpoints(self, target: Target) -> list[Endpoint]:
        return list(self._endpoints.get(target, ()))

    def subscribe(self, listener: Callable[[Target], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def ready_instances(self, target: Target) -> int:
        return len(self._endpoints.get(target, ()))

    def start_failure(self, target: Target) -> StartFailure | None:
        return self._failures.get(target)

    def announced(self, *, namespace: str, pod: str, ip: str, proof: str) -> None:
        """A pod's agent says it serves at ``ip``: believed when ``proof`` is made with
        the invoke token of the version the pod (as the watch knows it) runs."""
        found = next(
            (
                obj
                for informer in self._pods
                if (obj := informer.objects().get((namespace, pod))) is not None
            ),
            None,
        )
        target = None if found is None else workloads.target_of(found["metadata"], namespace)
        if found is None or target is None:
            log.info("announcement of an unknown pod namespace=%s pod=%s", namespace, pod)
            return
        token = instance_tokens.invoke_token(self._key, target)
        expected = protocol.announcement_proof(token, namespace=namespace, pod=pod, ip=ip)
        if not hmac.compare_digest(expected, proof):
            log.warning("announcement refused namespace=%s pod=%s", namespace, pod)
            return
        uid = found["metadata"]["uid"]
        self._announced[uid] = ip
        self._answered.add(uid)
        self._refresh()

    def _on_catalog(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._refresh()

    def _refresh(self) -> None:
        endpoints: dict[Target, list[Endpoint]] = {}
        failures: dict[Target, StartFailure] = {}
        observed: list[tuple[Target, Mapping[str, Any], bool]] = []
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
            serving = self._serves(pod)
            observed.append((target, pod, serving))
            if serving:
                endpoints.setdefault(target, []).append(self._endpoint(target, pod))
            elif (failure := pod_failure(pod)) is not None:
                known = failures.get(target)
                if known is None or failure.consecutive > known.consecutive:
                    failures[target] = failure
        self._forget_gone(pods)
        if self._lifecycle is not None:
            self._lifecycle.observe(observed)
        changed = _changed_targets(self._endpoints, endpoints)
        self._endpoints = endpoints
        # A target with a ready pod has no current start failure (the port's contract).
        self._failures = {t: f for t, f in failures.items() if t not in endpoints}
        for target in changed:
            for listener in list(self._listeners):
                listener(target)

    def _serves(self, pod: Mapping[str, Any]) -> bool:
        """Ready by the kubelet's word, or (before the kubelet has a word) by our probe;
        a pod still starting gets a probe."""
        address = _address(pod, self._announced)
        if address is None:
            return False
        uid = pod["metadata"]["uid"]
        if _condition(pod, "Ready") == "True":
            self._kubelet_ready.add(uid)
            return True
        if uid in self._kubelet_ready:
            return False  # the kubelet found it unready after all: final
        if uid in self._answered:
            return True
        if uid not in self._probes:
            self._probes[uid] = asyncio.get_running_loop().create_task(
                self._probe(uid, address), name=f"probe-{pod['metadata']['name']}"
            )
        return False

    async def _probe(self, uid: str, address: str) -> None:
        try:
            # Polling a remote process: nothing here could set an event when it is up.
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_PROBE_TIMEOUT):
                        if await answers_ready(address, workloads.AGENT_PORT):
                            break
                await asyncio.sleep(self._probe_interval)
            self._answered.add(uid)
        finally:
            self._probes.pop(uid, None)
        self._refresh()

    def _forget_gone(self, pods: Iterable[tuple[tuple[str, str], Mapping[str, Any]]]) -> None:
        live = {
            pod["metadata"]["uid"]
            for _key, pod in pods
            if _address(pod, self._announced) is not None
        }
        self._answered &= live
        self._announced = {uid: ip for uid, ip in self._announced.items() if uid in live}
        self._kubelet_ready &= live
        for uid in [uid for uid in self._probes if uid not in live]:
            self._probes.pop(uid).cancel()

    def _endpoint(self, target: Target, pod: Mapping[str, Any]) -> Endpoint:
        annotations = pod["metadata"].get("annotations") or {}
        return Endpoint(
            target=target,
            instance_id=pod["metadata"]["name"],
            host=_address(pod, self._announced) or "",
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
