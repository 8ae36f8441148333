"""The pod watch: which pods are endpoints, announcements, and why pods cannot start."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from kubelambda_agent import protocol

from kubelambda import instance_tokens
from kubelambda.kubernetes import pods, workloads
from kubelambda.kubernetes.pods import PodWatch
from kubelambda.models import CodePackage, Target
from kubelambda.ports.catalog import Catalog
from tests import factories

KEY = bytes(range(32))
TARGET = Target("team-a", "hello", "$LATEST")
RUNNING = CodePackage("ab" * 32, 10)
OLD = CodePackage("cd" * 32, 10)


class Pods:
    """Stands in for an informer: the pods the watch would hold."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.listeners: list[Callable[[], None]] = []

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def objects(self) -> Mapping[tuple[str, str], dict[str, Any]]:
        return self.items

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def put(self, pod: dict[str, Any]) -> None:
        self.items[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = pod
        for listener in self.listeners:
            listener()


class Versions:
    """Stands in for the catalog: one version running ``RUNNING``."""

    def __init__(self) -> None:
        version = factories.function_version(
            "hello",
            namespace="team-a",
            code_sha256=RUNNING.code_sha256,
            code_size=RUNNING.size,
        )
        self.snapshot = Catalog(versions={TARGET: version})

    async def catalog(self) -> Catalog:
        return self.snapshot

    def subscribe(self, listener: Callable[[Catalog], None]) -> Callable[[], None]:
        return lambda: None


def pod(
    name: str,
    *,
    package: CodePackage = RUNNING,
    ip: str | None = "10.244.0.5",
    ready: str | None = "True",
    deleting: bool = False,
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "team-a",
        "uid": f"uid-{name}",
        "labels": {workloads.LABEL_PACKAGE: workloads.package_label(package.sha256_hex)},
        "annotations": {
            workloads.ANNOTATION_FUNCTION_NAME: "hello",
            workloads.ANNOTATION_VERSION: "$LATEST",
            workloads.ANNOTATION_INSTANCE_CONCURRENCY: "4",
        },
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    status: dict[str, Any] = {"phase": "Running" if ip else "Pending"}
    if ip:
        status["podIP"] = ip
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready}]
    if statuses is not None:
        status["containerStatuses"] = statuses
    return {"metadata": metadata, "status": status}


@pytest.fixture
async def watched() -> AsyncIterator[tuple[PodWatch, Pods]]:
    informer = Pods()
    watch = PodWatch([informer], Versions(), key=KEY)  # type: ignore[list-item]
    await watch.start()
    yield watch, informer
    await watch.aclose()


async def test_a_ready_pod_of_the_running_package_is_an_endpoint(watched) -> None:
    watch, informer = watched
    informer.put(pod("a"))
    (endpoint,) = watch.endpoints(TARGET)
    assert (endpoint.host, endpoint.port, endpoint.concurrency) == ("10.244.0.5", 8080, 4)
    assert endpoint.token == instance_tokens.invoke_token(KEY, TARGET)
    assert watch.ready_instances(TARGET) == 1


@pytest.mark.parametrize(
    "stale",
    [pod("old", package=OLD), pod("going", deleting=True), pod("unready", ready="False", ip=None)],
)
async def test_old_code_deleted_and_unready_pods_are_not(watched, stale) -> None:
    watch, informer = watched
    informer.put(stale)
    assert watch.endpoints(TARGET) == []


async def test_an_announced_pod_serves_before_the_kubelet_reports_it(watched) -> None:
    watch, informer = watched
    informer.put(pod("fresh", ip=None, ready=None))
    changed: list[Target] = []
    watch.subscribe(changed.append)
    token = instance_tokens.invoke_token(KEY, TARGET)
    proof = protocol.announcement_proof(token, namespace="team-a", pod="fresh", ip="10.244.0.8")
    watch.announced(namespace="team-a", pod="fresh", ip="10.244.0.8", proof=proof)
    (endpoint,) = watch.endpoints(TARGET)
    assert endpoint.host == "10.244.0.8"
    assert changed == [TARGET]


@pytest.mark.parametrize(
    ("pod_name", "ip", "proof_pod"),
    [("fresh", "10.244.0.8", "other"), ("missing", "10.244.0.8", "missing")],
)
async def test_an_announcement_without_a_valid_proof_or_pod_is_ignored(
    watched, pod_name, ip, proof_pod
) -> None:
    watch, informer = watched
    informer.put(pod("fresh", ip=None, ready=None))
    token = instance_tokens.invoke_token(KEY, TARGET)
    proof = protocol.announcement_proof(token, namespace="team-a", pod=proof_pod, ip=ip)
    watch.announced(namespace="team-a", pod=pod_name, ip=ip, proof=proof)
    assert watch.endpoints(TARGET) == []


async def test_the_kubelets_unready_is_final_after_it_said_ready(watched) -> None:
    watch, informer = watched
    informer.put(pod("a"))
    token = instance_tokens.invoke_token(KEY, TARGET)
    proof = protocol.announcement_proof(token, namespace="team-a", pod="a", ip="10.244.0.5")
    watch.announced(namespace="team-a", pod="a", ip="10.244.0.5", proof=proof)
    informer.put(pod("a", ready="False"))
    assert watch.endpoints(TARGET) == []


def waiting(reason: str, message: str = "", restarts: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "name": "agent",
            "restartCount": restarts,
            "state": {"waiting": {"reason": reason, "message": message}},
            "lastState": {"terminated": {"exitCode": 1, "message": "fetch-code: 404\n"}},
        }
    ]


@pytest.mark.parametrize(
    ("statuses", "retriable", "consecutive", "reason_part"),
    [
        (waiting("CrashLoopBackOff", restarts=3), True, 3, "fetch-code: 404"),
        (waiting("ErrImageNeverPull", "not present"), False, 1, "ErrImageNeverPull"),
        (waiting("CreateContainerConfigError", "secret missing"), True, 1, "secret missing"),
    ],
)
def test_why_a_pod_cannot_start(statuses, retriable, consecutive, reason_part) -> None:
    failure = pods.pod_failure(pod("x", ready="False", statuses=statuses))
    assert failure is not None
    assert (failure.retriable, failure.consecutive) == (retriable, consecutive)
    assert reason_part in failure.reason


def test_a_pod_merely_starting_has_no_failure() -> None:
    starting = [
        {"name": "agent", "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
    ]
    assert pods.pod_failure(pod("x", ready="False", statuses=starting)) is None
