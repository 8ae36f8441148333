"""The controller's instance backend in Kubernetes mode: a Deployment per version.

The autoscaler calls ``scale`` for every runnable version on each pass; each call is a
reconcile of that version, in order: the function's ServiceAccount, Role, RoleBinding
and NetworkPolicy, then the version's Secret and headless Service, then its Deployment
with the replicas decided. Objects are applied (server-side apply) only when what the
builders in ``workloads`` return differs from what was applied, or the Deployment seen
by the watch drifted from it, so a steady pass makes no API call at all.

Every object is owned by the custom resource it serves (the Function, or a published
FunctionVersion), so Kubernetes' garbage collector removes them with it: deleting a
Function removes its ServiceAccount, Role, pods and all. Readiness and start failures
come from the pod watch (``pods.PodWatch``). Packages need no preparation here: a pod
fetches its package from the code store at start, so ``prepare`` only checks that the
store has it. Closing the backend leaves the pods running; they belong to the cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes_asyncio.client import ApiClient

from kubelambda import instance_tokens
from kubelambda.instance_environment import InitializationType
from kubelambda.kubernetes import events, objects, workloads
from kubelambda.kubernetes.informer import Informer, Resource
from kubelambda.kubernetes.pods import PodWatch
from kubelambda.kubernetes.workloads import Owner, PodSettings
from kubelambda.models import (
    CodePackage,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    Target,
)
from kubelambda.ports.code import CodeStore, PackageMissing
from kubelambda.ports.instances import PackageRejected, StartFailure

__all__ = ["KubernetesBackend", "OwnerLookup"]

log = logging.getLogger(__name__)

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts")
SECRETS = Resource("", "v1", "secrets")
SERVICES = Resource("", "v1", "services")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings")
NETWORK_POLICIES = Resource("networking.k8s.io", "v1", "networkpolicies")


class OwnerLookup(Protocol):
    """The custom resources behind the catalog (the Kubernetes store answers)."""

    def function_owner(self, function: FunctionKey) -> Owner | None: ...

    def version_owner(self, target: Target) -> Owner | None: ...

    def settings_of(self, function: FunctionKey) -> FunctionSettings | None: ...

    def is_routed(self, target: Target) -> bool:
        """Whether an alias points at ``target`` or it has provisioned concurrency."""
        ...


class KubernetesBackend:
    def __init__(
        self,
        api: ApiClient,
        *,
        pods: PodWatch,
        deployments: Sequence[Informer],
        owners: OwnerLookup,
        code: CodeStore,
        settings: PodSettings,
        key: bytes,
        version_grace_seconds: float = 3600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._clock = clock
        self._monotonic = monotonic
        self._version_grace_seconds = version_grace_seconds
        # Published versions at zero that nothing routes to: since when, and those whose
        # objects are collected.
        self._idle_since: dict[Target, float] = {}
        self._gone: set[Target] = set()
        self._pods = pods
        self._deployments = deployments
        self._owners = owners
        self._code = code
        self._settings = settings
        self._key = key
        # What this process applied last, by object: a digest of the manifest.
        self._applied: dict[tuple[str, str, str], str] = {}

    async def start(self) -> None:
        for informer in self._deployments:
            await informer.start()

    async def scale(
        self, version: FunctionVersion, *, replicas: int, concurrency: int, provisioned: int = 0
    ) -> None:
        function_owner = self._owners.function_owner(version.key)
        owner = self._owners.version_owner(version.target)
        settings = self._owners.settings_of(version.key)
        if function_owner is None or owner is None or settings is None:
            # Not (or no longer) in the cluster: its objects go with its resource.
            return
        function_object = function_owner.name
        if await self._collected(function_object, version, replicas=replicas):
            return
        await self._ensure_function(function_object, version.namespace, settings, function_owner)
        await self._ensure_version(
            function_object,
            version,
            owner=owner,
            replicas=replicas,
            concurrency=concurrency,
            settings=settings,
            # All of a version's pods share one template: they are provisioned while the
            # version has provisioned concurrency (the floor the autoscaler keeps).
            initialization_type=(
                InitializationType.PROVISIONED if provisioned else InitializationType.ON_DEMAND
            ),
        )

    async def _collected(
        self, function_object: str, version: FunctionVersion, *, replicas: int
    ) -> bool:
        """Whether ``version``'s objects are (now) collected: a published version at zero
        pods that nothing routes to (no alias, no provisioned concurrency) keeps its
        Deployment, Service and Secret for ``version_grace_seconds``, then loses them
        until it is invoked again by its number (which makes them anew)."""
        target = version.target
        if replicas or version.is_latest or self._owners.is_routed(target):
            self._idle_since.pop(target, None)
            self._gone.discard(target)
            return False
        if target in self._gone:
            return True
        now = self._monotonic()
        since = self._idle_since.setdefault(target, now)
        if now - since < self._version_grace_seconds:
            return False
        name = workloads.instance_name(function_object, version.version)
        for resource in (DEPLOYMENTS, SERVICES, SECRETS):
            await objects.delete(self._api, resource, version.namespace, name)
            self._applied.pop(_object_key(resource, version.namespace, name), None)
        self._gone.add(target)
        log.info(
            "collected namespace=%s function=%s version=%s reason=unrouted-and-idle",
            version.namespace,
            version.function_name,
            version.version,
        )
        return True

    async def prepare(self, package: CodePackage, *, function: FunctionKey) -> None:
        """Only checks that the package is stored: pods fetch it themselves."""
        try:
            await self._code.location(package.sha256_hex)
        except PackageMissing as exc:
            raise PackageRejected(f"code package {package.code_sha256} is not stored") from exc

    async def discard(self, sha256_hexes: Collection[str]) -> None:
        """Nothing was prepared: pods fetch packages themselves."""

    def ready_instances(self, target: Target) -> int:
        return self._pods.ready_instances(target)

    def starts_deferred(self) -> Collection[Target]:
        # The scheduler is the budget here: a pod it cannot place stays Pending (counted
        # by ``PodLifecycle``), and nothing of another function is stopped for it.
        return ()

    def start_failure(self, target: Target) -> StartFailure | None:
        return self._pods.start_failure(target)

    async def aclose(self) -> None:
        for informer in self._deployments:
            await informer.aclose()

    async def _ensure_function(
        self, function_object: str, namespace: str, settings: FunctionSettings, owner: Owner
    ) -> None:
        identity = settings.identity
        await self._apply(
            SERVICE_ACCOUNTS,
            workloads.service_account(
                function_object, namespace=namespace, identity=identity, owner=owner
            ),
        )
        role = workloads.role(function_object, namespace=namespace, identity=identity, owner=owner)
        if role is None:
            await self._remove(ROLES, namespace, function_object)
            await self._remove(ROLE_BINDINGS, namespace, function_object)
        else:
            await self._apply(ROLES, role)
            await self._apply(
                ROLE_BINDINGS,
                workloads.role_binding(function_object, namespace=namespace, owner=owner),
            )
        await self._apply(
            NETWORK_POLICIES,
            workloads.network_policy(
                function_object, namespace=namespace, owner=owner, settings=self._settings
            ),
        )

    async def _ensure_version(
        self,
        function_object: str,
        version: FunctionVersion,
        *,
        owner: Owner,
        replicas: int,
        concurrency: int,
        settings: FunctionSettings,
        initialization_type: InitializationType,
    ) -> None:
        await self._apply(
            SECRETS,
            workloads.secret(
                function_object,
                version,
                owner=owner,
                invoke_token=instance_tokens.invoke_token(self._key, version.target),
                code_token=instance_tokens.code_token(
                    self._key, version.running_package.sha256_hex
                ),
            ),
        )
        await self._apply(SERVICES, workloads.service(function_object, version, owner=owner))
        desired = workloads.deployment(
            function_object,
            version,
            owner=owner,
            replicas=replicas,
            concurrency=concurrency,
            identity=settings.identity,
            settings=self._settings,
            idle_timeout=settings.idle_timeout_seconds,
            initialization_type=initialization_type,
        )
        name = desired["metadata"]["name"]
        seen = _find(self._deployments, (version.namespace, name))
        drifted = seen is None or (
            workloads.spec_hash(seen) != workloads.spec_hash(desired)
            or seen.get("spec", {}).get("replicas") != replicas
        )
        if drifted and seen is not None:
            # The watch shows what is there: apply even if this process applied it before.
            self._applied.pop(_object_key(DEPLOYMENTS, version.namespace, name), None)
        await self._apply(DEPLOYMENTS, desired)
        if drifted and seen is not None:
            before = seen.get("spec", {}).get("replicas")
            log.info(
                "deployment namespace=%s function=%s version=%s replicas=%s->%d",
                version.namespace,
                version.function_name,
                version.version,
                before,
                replicas,
            )
            await self._record(owner, version, before=seen, replicas=replicas, desired=desired)

    async def _record(
        self,
        owner: Owner,
        version: FunctionVersion,
        *,
        before: Mapping[str, Any],
        replicas: int,
        desired: Mapping[str, Any],
    ) -> None:
        """Events for what changed: the pods' code or configuration, their number."""
        now = self._clock()
        if workloads.spec_hash(before) != workloads.spec_hash(desired):
            message = (
                f"Rolling version {version.version} to package "
                f"{version.running_package.code_sha256} and its configuration"
            )
            await events.record(
                self._api,
                events.event(
                    owner, namespace=version.namespace, reason="Updated", message=message, now=now
                ),
            )
        previous = int(before.get("spec", {}).get("replicas") or 0)
        if previous != replicas:
            message = f"Scaled version {version.version} from {previous} to {replicas} pod(s)"
            await events.record(
                self._api,
                events.event(
                    owner,
                    namespace=version.namespace,
                    reason="ScaledUp" if replicas > previous else "ScaledDown",
                    message=message,
                    now=now,
                ),
            )

    async def _apply(self, kind: Resource, manifest: Mapping[str, Any]) -> None:
        metadata = manifest["metadata"]
        key = _object_key(kind, metadata["namespace"], metadata["name"])
        digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
        if self._applied.get(key) == digest:
            return
        await objects.apply(self._api, kind, manifest)
        self._applied[key] = digest

    async def _remove(self, kind: Resource, namespace: str, name: str) -> None:
        key = _object_key(kind, namespace, name)
        if self._applied.get(key) == "":
            return
        await objects.delete(self._api, kind, namespace, name)
        self._applied[key] = ""


def _find(informers: Sequence[Informer], key: tuple[str, str]) -> Mapping[str, Any] | None:
    for informer in informers:
        if (found := informer.objects().get(key)) is not None:
            return found
    return None


def _object_key(kind: Resource, namespace: str, name: str) -> tuple[str, str, str]:
    return (kind.plural, namespace, name)
