"""``KubernetesStore``: the Kubernetes adapter of the ``ManagementStore`` and
``ControllerStore`` ports (``kubelambda.ports``), and so of ``CatalogSource``.

Opened by the Kubernetes launcher (``async with KubernetesStore.open(api, ...)``) for the
gateway (management API and invoke path) and for the controller (which alone passes a
``code_store``). A function is a Function custom resource (its spec is ``$LATEST`` and
the function-wide settings), a published version a FunctionVersion, an alias an Alias;
``resources`` maps them to the models. Reads come from the informers' caches
(``cache``): the catalog is rebuilt on every change they see and handed to subscribers,
so invokes make no apiserver call. Writes (``writer``, of objects ``manifests`` builds)
go to the apiserver under the object's resourceVersion: a writer that raced another is
answered 409, re-reads, re-checks (an expected RevisionId that no longer matches is then
PreconditionFailed) and tries again. Every write returns once the informer has seen it,
so the caller reads its own writes.

With a ``code_store``, a hand-written Function's inline zip (``spec.code.zipBase64``)
is checked (``zips.inspect``) and put into it before the catalog shows the function; a
refused zip fails the function with the reason, as a refused upload would.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client

from kubelambda import errors, names, zips
from kubelambda.kubernetes import manifests, object_names, resources, rest
from kubelambda.kubernetes.cache import ALIASES, FUNCTION_VERSIONS, FUNCTIONS, ResourceCache
from kubelambda.kubernetes.informer import Resource
from kubelambda.kubernetes.workloads import Owner
from kubelambda.kubernetes.writer import Gone, ObjectWriter, object_path
from kubelambda.models import (
    LATEST,
    Alias,
    CodePackage,
    EventInvokeConfig,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    LastUpdateStatus,
    ProvisionedConcurrency,
    ProvisionedStatus,
    State,
    Target,
)
from kubelambda.ports.catalog import Catalog, CatalogListener
from kubelambda.ports.code import CodeStore

__all__ = ["KubernetesStore"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
_PRECONDITION = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)


class KubernetesStore:
    """Functions, versions, aliases and settings as custom resources in ``namespaces``
    (every namespace when ``None``). ``region`` renders the ARNs of error messages."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        region: str,
        namespaces: Iterable[str] | None = None,
        clock: Callable[[], datetime] | None = None,
        code_store: CodeStore | None = None,
    ) -> None:
        self._api = api
        self._region = region
        self._namespaces = None if namespaces is None else tuple(namespaces)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._code_store = code_store
        self._imported: set[str] = set()
        self._cache = ResourceCache(
            api,
            namespaces=self._namespaces,
            package_of=resources.spec_package,
            prepare=self._import_inline_code if code_store is not None else None,
        )
        self._writer = ObjectWriter(api, self._cache)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        api: client.ApiClient,
        *,
        region: str,
        namespaces: Iterable[str] | None = None,
        clock: Callable[[], datetime] | None = None,
        code_store: CodeStore | None = None,
    ) -> AsyncIterator[KubernetesStore]:
        """Start the informers and return once the catalog holds what they listed."""
        store = cls(api, region=region, namespaces=namespaces, clock=clock, code_store=code_store)
        try:
            await store._cache.start()
            yield store
        finally:
            await store._cache.aclose()

    # -- CatalogSource ------------------------------------------------------------------

    async def catalog(self) -> Catalog:
        return (await self._cache.current()).catalog

    def subscribe(self, listener: CatalogListener) -> Callable[[], None]:
        return self._cache.subscribe(listener)

    # -- the objects behind the catalog (``instances.OwnerLookup``) ----------------------

    def function_owner(self, function: FunctionKey) -> Owner | None:
        """The Function resource of ``function``: what its ServiceAccount belongs to."""
        key = self._cache.latest.index.functions.get(function)
        return None if key is None else _owner("Function", self._cache.get(FUNCTIONS, key))

    def version_owner(self, target: Target) -> Owner | None:
        """What a version's Deployment belongs to: the Function for ``$LATEST``, else the
        FunctionVersion (so deleting a version deletes its pods)."""
        if target.version == LATEST:
            return self.function_owner(target.function)
        key = self._cache.latest.index.versions.get(target)
        found = None if key is None else self._cache.get(FUNCTION_VERSIONS, key)
        return _owner("FunctionVersion", found)

    def settings_of(self, function: FunctionKey) -> FunctionSettings | None:
        return self._cache.latest.catalog.settings.get(function)

    def is_routed(self, target: Target) -> bool:
        catalog = self._cache.latest.catalog
        for (function, _name), alias in catalog.aliases.items():
            if function == target.function and (
                alias.function_version == target.version
                or target.version in alias.additional_version_weights
            ):
                return True
        return (target.function, target.version) in catalog.provisioned

    # -- ControllerStore ----------------------------------------------------------------

    async def finish_package(
        self, function: FunctionKey, code_sha256: str, *, error: str | None
    ) -> bool:
        """Settle ``$LATEST`` (in the Function's status) and the published versions (in
        theirs) that wait for this package."""
        snapshot = await self._cache.current()
        if function not in snapshot.index.functions:
            return False
        moment = self._clock()

        def settle_latest(obj: Obj) -> bool:
            package = resources.spec_package(obj)
            latest = resources.latest_from_function(obj, package=package)
            if latest.code_sha256 != code_sha256 or not latest.awaits_package:
                return False
            manifests.settle_status(obj, package, error=error, now=moment)
            return True

        changed = await self._update(FUNCTIONS, function, settle_latest, status=True) is not None
        for target, object_key in snapshot.index.versions.items():
            version = snapshot.catalog.versions[target]
            if target.function != function or version.code_sha256 != code_sha256:
                continue
            if version.state is not State.PENDING:
                continue
            state = State.ACTIVE if error is None else State.FAILED
            written = await self._write_version_status(object_key, state, reason=error or "")
            changed |= written is not None
        if changed:
            await self._cache.rebuild()
        return changed

    async def set_provisioned_status(
        self,
        function: FunctionKey,
        qualifier: str,
        *,
        allocated: int,
        status: ProvisionedStatus,
        reason: str = "",
    ) -> None:
        now = self._now()
        status = ProvisionedStatus(status)

        def report(obj: Obj) -> bool:
            requested = {e["qualifier"] for e in obj["spec"].get("provisionedConcurrency") or ()}
            current = obj.setdefault("status", {})
            entries = [
                e
                for e in current.get("provisionedConcurrency") or ()
                if e["qualifier"] in requested
            ]
            old = next((e for e in entries if e["qualifier"] == qualifier), None)
            new = {"allocated": allocated, "status": status.value, "statusReason": reason}
            # A config deleted meanwhile is simply gone; a repeated report is no news.
            if qualifier not in requested or (
                old is not None and {k: old.get(k) for k in new} == new
            ):
                return False
            entries = [e for e in entries if e["qualifier"] != qualifier]
            entries.append({"qualifier": qualifier, **new, "lastModified": now})
            current["provisionedConcurrency"] = sorted(entries, key=lambda e: str(e["qualifier"]))
            return True

        known = function in (await self._cache.current()).index.functions
        if known and await self._update(FUNCTIONS, function, report, status=True) is not None:
            await self._cache.rebuild()

    # -- ManagementStore: functions and versions ----------------------------------------

    async def create_function(
        self, latest: FunctionVersion, settings: FunctionSettings, *, publish: bool
    ) -> FunctionVersion:
        if settings.key != latest.key or not latest.is_latest:
            raise ValueError(f"settings of {settings.key} for version {latest.target}")
        key = latest.key
        self._require_served(key.namespace)
        if key in (await self._cache.current()).index.functions:
            raise errors.ResourceConflict(f"Function already exist: {key.name}")
        try:
            manifest = manifests.function_manifest(latest, settings, now=self._clock())
        except ValueError as exc:
            raise errors.InvalidParameterValue(str(exc)) from exc
        try:
            await self._writer.create(FUNCTIONS, manifest)
        except rest.ApiError as exc:
            if exc.status == 409:
                raise errors.ResourceConflict(f"Function already exist: {key.name}") from exc
            raise
        if publish:
            return await self._publish(key, description=None)
        await self._cache.rebuild()
        return await self.get_version(key, LATEST)

    async def get_version(self, function: FunctionKey, version: str) -> FunctionVersion:
        catalog = await self._catalog_with(function)
        if function not in catalog.settings:
            raise self._not_found(function)
        found = catalog.versions.get(_target(function, version))
        if found is None:
            raise self._not_found(function, None if version == LATEST else version)
        return found

    async def get_settings(self, function: FunctionKey) -> FunctionSettings:
        settings = (await self._catalog_with(function)).settings.get(function)
        if settings is None:
            raise self._not_found(function)
        return settings

    async def list_functions(
        self,
        namespace: str,
        *,
        after: tuple[str, int] | None,
        limit: int,
        all_versions: bool,
    ) -> list[FunctionVersion]:
        start = after if after is not None else ("", -1)
        found = sorted(
            (
                (version.function_name, _number(version.version)),
                version,
            )
            for version in (await self._cache.current()).catalog.versions.values()
            if version.namespace == namespace and (all_versions or version.is_latest)
        )
        return [version for order, version in found if order > start][:limit]

    async def list_versions(
        self, function: FunctionKey, *, after: int, limit: int
    ) -> list[FunctionVersion]:
        catalog = (await self._cache.current()).catalog
        if function not in catalog.settings:
            raise self._not_found(function)
        found = sorted(
            (_number(v.version), v) for v in catalog.versions.values() if v.key == function
        )
        return [version for number, version in found if number > after][:limit]

    async def update_configuration(
        self,
        function: FunctionKey,
        change: Callable[[FunctionVersion], FunctionVersion],
        *,
        expected_revision_id: str | None,
    ) -> FunctionVersion:
        moment = self._clock()

        def update(obj: Obj) -> bool:
            current = self._latest(obj)
            self._require_updatable(current, expected_revision_id)
            updated = change(current)
            obj["spec"].update(resources.version_fields(updated))
            if updated.dead_letter_target_arn is None:
                obj["spec"].pop("deadLetterTargetArn", None)
            manifests.stamp(obj, moment)
            return True

        await self._update(FUNCTIONS, function, update)
        await self._cache.rebuild()
        return await self.get_version(function, LATEST)

    async def begin_code_update(
        self,
        function: FunctionKey,
        package: CodePackage,
        *,
        expected_revision_id: str | None,
        publish: bool,
    ) -> FunctionVersion:
        moment = self._clock()

        def update(obj: Obj) -> bool:
            self._require_updatable(self._latest(obj), expected_revision_id)
            obj["spec"]["code"] = resources.package_fields(package)
            manifests.stamp(obj, moment)
            return True

        await self._update(FUNCTIONS, function, update)
        if publish:
            return await self._publish(function, description=None)
        await self._cache.rebuild()
        return await self.get_version(function, LATEST)

    async def publish_version(
        self,
        function: FunctionKey,
        *,
        description: str | None,
        expected_revision_id: str | None,
        code_sha256: str | None,
    ) -> FunctionVersion:
        latest = await self.get_version(function, LATEST)
        self._require_updatable(latest, expected_revision_id)
        if code_sha256 is not None and code_sha256 != latest.code_sha256:
            raise errors.InvalidParameterValue(
                f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST "
                f"({latest.code_sha256}). Please try again with the current CodeSHA256."
            )
        return await self._publish(function, description=description)

    async def delete_function(self, function: FunctionKey) -> None:
        obj = await self._object(FUNCTIONS, function)
        await self._writer.delete(FUNCTIONS, obj)
        # The garbage collector would remove them too, but later: a function created
        # again under this name must not meet its predecessor's version objects.
        selector = f"{object_names.FUNCTION_LABEL}={obj['metadata']['name']}"
        for resource in (FUNCTION_VERSIONS, ALIASES):
            await self._writer.delete_all(
                resource, namespace=obj["metadata"]["namespace"], selector=selector
            )
        await self._cache.rebuild()

    async def delete_version(self, function: FunctionKey, version: str) -> None:
        if version == LATEST:
            raise errors.InvalidParameterValue(
                "$LATEST version cannot be deleted without deleting the function."
            )
        if not version.isdigit():
            raise errors.InvalidParameterValue(
                "Deletion of aliases is not supported by DeleteFunction; "
                f"use DeleteAlias for {version}"
            )
        await self.get_version(function, version)
        snapshot = await self._cache.current()
        referring = sorted(
            alias.name
            for (key, _), alias in snapshot.catalog.aliases.items()
            if key == function
            and (alias.function_version == version or version in alias.additional_version_weights)
        )
        if referring:
            raise errors.ResourceConflict(
                "Unable to delete version because the following aliases reference it: "
                f"[{', '.join(referring)}]"
            )
        obj = self._cache.get(
            FUNCTION_VERSIONS, snapshot.index.versions[_target(function, version)]
        )
        if obj is not None:
            await self._writer.delete(FUNCTION_VERSIONS, obj)
        await self._forget_qualifier(function, version)
        await self._cache.rebuild()

    # -- ManagementStore: aliases -------------------------------------------------------

    async def create_alias(self, alias: Alias) -> Alias:
        snapshot = await self._cache.current()
        function_key = snapshot.index.functions.get(alias.key)
        if function_key is None:
            raise self._not_found(alias.key)
        if (alias.key, alias.name) in snapshot.index.aliases:
            raise self._alias_exists(alias)
        self._require_targets(alias, snapshot.catalog)
        function = self._cache.get(FUNCTIONS, function_key)
        if function is None:
            raise self._not_found(alias.key)
        for hashed in (False, True):
            manifest = manifests.alias_manifest(alias, function, hashed=hashed)
            try:
                created = await self._writer.create(ALIASES, manifest)
            except rest.ApiError as exc:
                if exc.status != 409:
                    raise
                taken = await self._writer.call("GET", object_path(ALIASES, manifest))
                if resources.alias_from_object(taken).key == alias.key and (
                    taken["spec"]["name"] == alias.name
                ):
                    raise self._alias_exists(alias) from exc
                continue
            await self._cache.rebuild()
            return resources.alias_from_object(created)
        raise self._alias_exists(alias)

    async def get_alias(self, function: FunctionKey, name: str) -> Alias:
        catalog = (await self._cache.current()).catalog
        if function not in catalog.settings:
            raise self._not_found(function)
        found = catalog.aliases.get((function, name))
        if found is None:
            arn = names.function_arn(function.name, name, region=self._region)
            raise errors.ResourceNotFound(f"Cannot find alias arn: {arn}")
        return found

    async def update_alias(
        self,
        function: FunctionKey,
        name: str,
        change: Callable[[Alias], Alias],
        *,
        expected_revision_id: str | None,
    ) -> Alias:
        await self.get_alias(function, name)
        snapshot = await self._cache.current()
        object_key = snapshot.index.aliases[(function, name)]

        def update(obj: Obj) -> bool:
            current = resources.alias_from_object(obj)
            if expected_revision_id is not None and expected_revision_id != current.revision_id:
                raise errors.PreconditionFailed(_PRECONDITION)
            updated = change(current).with_changes(
                namespace=current.namespace, function_name=current.function_name, name=name
            )
            self._require_targets(updated, snapshot.catalog)
            resources.write_alias(obj["spec"], updated)
            return True

        written = await self._writer.replace(ALIASES, object_key, update)
        await self._cache.rebuild()
        return (
            resources.alias_from_object(written)
            if written
            else await self.get_alias(function, name)
        )

    async def delete_alias(self, function: FunctionKey, name: str) -> None:
        await self.get_alias(function, name)
        snapshot = await self._cache.current()
        obj = self._cache.get(ALIASES, snapshot.index.aliases[(function, name)])
        if obj is not None:
            await self._writer.delete(ALIASES, obj)
        # Provisioned instances kept warm for this alias have nothing to serve any more,
        # and no event can be invoked through it any more.
        await self._forget_qualifier(function, name)
        await self._cache.rebuild()

    async def list_aliases(
        self, function: FunctionKey, *, function_version: str | None, after: str, limit: int
    ) -> list[Alias]:
        catalog = (await self._cache.current()).catalog
        if function not in catalog.settings:
            raise self._not_found(function)
        found = sorted(
            (alias.name, alias)
            for (key, name), alias in catalog.aliases.items()
            if key == function
            and name > after
            and (function_version is None or alias.function_version == function_version)
        )
        return [alias for _, alias in found][:limit]

    # -- ManagementStore: tags, reserved and provisioned concurrency --------------------

    async def tag(self, function: FunctionKey, tags: Mapping[str, str]) -> FunctionSettings:
        current = await self.get_settings(function)
        return await self._write_tags(function, {**current.tags, **tags})

    async def untag(self, function: FunctionKey, keys: Iterable[str]) -> FunctionSettings:
        current = await self.get_settings(function)
        removed = set(keys)
        return await self._write_tags(
            function, {key: value for key, value in current.tags.items() if key not in removed}
        )

    async def put_reserved_concurrency(self, function: FunctionKey, reserved: int) -> None:
        def update(obj: Obj) -> bool:
            obj["spec"]["reservedConcurrency"] = reserved
            return True

        await self._update(FUNCTIONS, function, update)
        await self._cache.rebuild()

    async def delete_reserved_concurrency(self, function: FunctionKey) -> None:
        def update(obj: Obj) -> bool:
            return obj["spec"].pop("reservedConcurrency", None) is not None

        await self._update(FUNCTIONS, function, update)
        await self._cache.rebuild()

    async def put_provisioned(
        self, function: FunctionKey, qualifier: str, *, requested: int
    ) -> ProvisionedConcurrency:
        if qualifier == LATEST:
            raise errors.InvalidParameterValue(
                "Provisioned Concurrency Configs cannot be applied to unpublished function "
                "versions."
            )
        if qualifier.isdigit():
            await self.get_version(function, qualifier)
        elif (await self.get_alias(function, qualifier)).function_version == LATEST:
            raise errors.InvalidParameterValue(
                "Provisioned Concurrency Configs cannot be applied to an alias pointing to $LATEST."
            )
        now = self._now()

        def request(obj: Obj) -> bool:
            entries = [
                e
                for e in obj["spec"].get("provisionedConcurrency") or ()
                if e["qualifier"] != qualifier
            ]
            entries.append({"qualifier": qualifier, "count": requested, "lastModified": now})
            obj["spec"]["provisionedConcurrency"] = sorted(entries, key=lambda e: e["qualifier"])
            return True

        def in_progress(obj: Obj) -> bool:
            # A changed request keeps what is allocated until the controller reports again.
            status = obj.setdefault("status", {})
            entries = list(status.get("provisionedConcurrency") or ())
            old: dict[str, Any] = next((e for e in entries if e["qualifier"] == qualifier), {})
            entries = [e for e in entries if e["qualifier"] != qualifier]
            entries.append(
                {
                    "qualifier": qualifier,
                    "allocated": old.get("allocated", 0),
                    "status": ProvisionedStatus.IN_PROGRESS.value,
                    "statusReason": "",
                    "lastModified": now,
                }
            )
            status["provisionedConcurrency"] = sorted(entries, key=lambda e: e["qualifier"])
            return True

        await self._update(FUNCTIONS, function, request)
        await self._update(FUNCTIONS, function, in_progress, status=True)
        await self._cache.rebuild()
        return await self.get_provisioned(function, qualifier)

    async def get_provisioned(
        self, function: FunctionKey, qualifier: str
    ) -> ProvisionedConcurrency:
        catalog = (await self._cache.current()).catalog
        if function not in catalog.settings:
            raise self._not_found(function)
        found = catalog.provisioned.get((function, qualifier))
        if found is None:
            raise errors.ProvisionedConcurrencyConfigNotFound(
                "No Provisioned Concurrency Config found for this function"
            )
        return found

    async def delete_provisioned(self, function: FunctionKey, qualifier: str) -> None:
        await self.get_provisioned(function, qualifier)
        await self._update(
            FUNCTIONS, function, manifests.without("provisionedConcurrency", qualifier)
        )
        await self._cache.rebuild()

    async def list_provisioned(
        self, function: FunctionKey, *, after: str, limit: int
    ) -> list[ProvisionedConcurrency]:
        catalog = (await self._cache.current()).catalog
        if function not in catalog.settings:
            raise self._not_found(function)
        found = sorted(
            (qualifier, config)
            for (key, qualifier), config in catalog.provisioned.items()
            if key == function and qualifier > after
        )
        return [config for _, config in found][:limit]

    # -- ManagementStore: event invoke configs ------------------------------------------

    async def put_event_invoke_config(self, config: EventInvokeConfig) -> EventInvokeConfig:
        function, qualifier = config.key, config.qualifier
        catalog = (await self._cache.current()).catalog
        if function not in catalog.settings:
            raise self._not_found(function)
        exists = (
            qualifier == LATEST
            or (qualifier.isdigit() and _target(function, qualifier) in catalog.versions)
            or (function, qualifier) in catalog.aliases
        )
        if not exists:
            raise self._not_found(function, qualifier)
        stamped = config.with_changes(last_modified=self._now())

        def update(obj: Obj) -> bool:
            resources.write_event_invoke_config(obj["spec"], stamped)
            return True

        await self._update(FUNCTIONS, function, update)
        await self._cache.rebuild()
        return await self.get_event_invoke_config(function, qualifier)

    async def get_event_invoke_config(
        self, function: FunctionKey, qualifier: str
    ) -> EventInvokeConfig:
        # Lambda answers the same whether the function, the qualifier or only the config
        # is missing: the qualified ARN has no config.
        found = (await self._cache.current()).catalog.event_invoke_configs.get(
            (function, qualifier)
        )
        if found is None:
            arn = names.function_arn(function.name, qualifier, region=self._region)
            raise errors.ResourceNotFound(f"The function {arn} doesn't have an EventInvokeConfig")
        return found

    async def delete_event_invoke_config(self, function: FunctionKey, qualifier: str) -> None:
        await self.get_event_invoke_config(function, qualifier)
        await self._update(FUNCTIONS, function, manifests.without("eventInvokeConfigs", qualifier))
        await self._cache.rebuild()

    async def list_event_invoke_configs(
        self, function: FunctionKey, *, after: str, limit: int
    ) -> list[EventInvokeConfig]:
        catalog = (await self._cache.current()).catalog
        if function not in catalog.settings:
            raise self._not_found(function)
        found = sorted(
            (qualifier, config)
            for (key, qualifier), config in catalog.event_invoke_configs.items()
            if key == function and qualifier > after
        )
        return [config for _, config in found][:limit]

    # -- publishing ---------------------------------------------------------------------

    async def _publish(self, function: FunctionKey, *, description: str | None) -> FunctionVersion:
        """Freeze ``$LATEST`` as the next version, or return the last one if it runs
        the same (what ``publish_version`` and the ``publish`` flags do)."""
        await self._cache.rebuild()
        catalog = (await self._cache.current()).catalog
        latest = await self.get_version(function, LATEST)
        published = sorted(
            (int(v.version), v)
            for v in catalog.versions.values()
            if v.key == function and not v.is_latest
        )
        if published and published[-1][1].runs_like(latest):
            return published[-1][1]
        counted = max((number for number, _ in published), default=0)
        number = 0

        def count(obj: Obj) -> bool:
            nonlocal number
            annotations = obj["metadata"].setdefault("annotations", {})
            number = max(int(annotations.get(resources.LAST_VERSION, 0)), counted) + 1
            annotations[resources.LAST_VERSION] = str(number)
            return True

        function_obj = await self._update(FUNCTIONS, function, count)
        assert function_obj is not None  # count always writes
        manifest = manifests.version_manifest(
            latest,
            function_obj,
            version=str(number),
            description=description,
            now=self._clock(),
        )
        created = await self._writer.create(FUNCTION_VERSIONS, manifest)
        # A version published from a package not settled yet waits for it, Pending; it
        # never runs the package $LATEST serves meanwhile (that is not its code).
        if latest.last_update_status is not LastUpdateStatus.IN_PROGRESS:
            await self._write_version_status(
                (created["metadata"]["namespace"], created["metadata"]["name"]),
                latest.state,
                reason=latest.state_reason,
            )
        await self._count_versions(function)
        await self._cache.rebuild()
        return await self.get_version(function, str(number))

    async def _write_version_status(
        self, object_key: tuple[str, str], state: State, *, reason: str
    ) -> Obj | None:
        def settle(obj: Obj) -> bool:
            status = obj.setdefault("status", {})
            if status.get("state") in (State.ACTIVE.value, State.FAILED.value):
                return False
            status.update(
                state=state.value,
                stateReason=reason,
                observedGeneration=obj["metadata"].get("generation", 1),
                conditions=[
                    manifests.ready_condition(state is State.ACTIVE, reason, obj, now=self._clock())
                ],
            )
            return True

        return await self._writer.replace(FUNCTION_VERSIONS, object_key, settle, status=True)

    async def _count_versions(self, function: FunctionKey) -> None:
        """Keep ``status.versions`` (kubectl's Versions column) right; best effort."""
        catalog = (await self._cache.current()).catalog
        count = sum(1 for v in catalog.versions.values() if v.key == function and not v.is_latest)

        def write(obj: Obj) -> bool:
            status = obj.setdefault("status", {})
            if status.get("versions") == count:
                return False
            status["versions"] = count
            return True

        try:
            await self._update(FUNCTIONS, function, write, status=True)
        except errors.LambdaError as exc:
            log.warning("event=version_count_failed function=%s error=%r", function, exc)

    # -- inline code (controller only) --------------------------------------------------

    async def _import_inline_code(self) -> None:
        """Put every inline zip not yet imported into the code store; fail the function
        with the reason when the zip is refused."""
        assert self._code_store is not None
        for obj in list(self._cache.objects(FUNCTIONS).values()):
            if "zipBase64" not in obj["spec"]["code"]:
                continue
            package = resources.spec_package(obj)
            if package.sha256_hex in self._imported:
                continue
            try:
                data = resources.inline_zip(obj) or b""
                runtime = obj["spec"]["runtime"]
                require = "bootstrap" if runtime.startswith("provided") else None
                await asyncio.to_thread(zips.inspect, data, require=require)
            except (ValueError, errors.InvalidParameterValue) as exc:
                reason = exc.message if isinstance(exc, errors.LambdaError) else str(exc)
                await self._refuse_inline(obj, package, reason)
                self._imported.add(package.sha256_hex)
                continue
            stored = await self._code_store.put(data)
            log.info(
                "event=inline_code_imported function=%s/%s sha256=%s",
                obj["metadata"]["namespace"],
                obj["metadata"]["name"],
                stored.sha256_hex,
            )
            self._imported.add(package.sha256_hex)

    async def _refuse_inline(
        self, function: Mapping[str, Any], package: CodePackage, reason: str
    ) -> None:
        moment = self._clock()
        log.warning(
            "event=inline_code_refused function=%s/%s reason=%s",
            function["metadata"]["namespace"],
            function["metadata"]["name"],
            reason,
        )

        def refuse(obj: Obj) -> bool:
            if resources.spec_package(obj) != package:
                return False
            manifests.settle_status(obj, package, error=reason, now=moment)
            return True

        object_key = (function["metadata"]["namespace"], function["metadata"]["name"])
        await self._writer.replace(FUNCTIONS, object_key, refuse, status=True, wait=False)

    # -- writes -------------------------------------------------------------------------

    async def _write_tags(self, function: FunctionKey, tags: Mapping[str, str]) -> FunctionSettings:
        def update(obj: Obj) -> bool:
            try:
                resources.write_settings(obj["spec"], tags)
            except ValueError as exc:
                raise errors.InvalidParameterValue(str(exc)) from exc
            return True

        await self._update(FUNCTIONS, function, update)
        await self._cache.rebuild()
        return await self.get_settings(function)

    async def _forget_qualifier(self, function: FunctionKey, qualifier: str) -> None:
        """Drop the provisioned and event invoke configs of a deleted version or alias."""

        def update(obj: Obj) -> bool:
            changed = manifests.without("provisionedConcurrency", qualifier)(obj)
            return manifests.without("eventInvokeConfigs", qualifier)(obj) or changed

        await self._update(FUNCTIONS, function, update)

    async def _catalog_with(self, function: FunctionKey) -> Catalog:
        """The catalog, caught up with ``function`` if the apiserver has it but the watch
        has yet to deliver it: a Function applied with kubectl a moment ago is there for
        ``aws lambda get-function`` (and its waiters) at once, as on Lambda."""
        catalog = (await self._cache.current()).catalog
        if function in catalog.settings or (
            self._namespaces is not None and function.namespace not in self._namespaces
        ):
            return catalog
        path = rest.resource_path(
            FUNCTIONS.group,
            FUNCTIONS.version,
            FUNCTIONS.plural,
            namespace=function.namespace,
            name=object_names.function_object_name(function.name),
        )
        try:
            obj = await rest.request(self._api, "GET", path)
        except rest.ApiError as exc:
            if exc.status != 404:
                log.warning("function lookup failed function=%s error=%s", function, exc)
            return catalog
        await self._cache.seen(FUNCTIONS, obj)
        return (await self._cache.current()).catalog

    async def _object(self, resource: Resource, function: FunctionKey) -> Obj:
        object_key = (await self._cache.current()).index.functions.get(function)
        obj = None if object_key is None else self._cache.get(resource, object_key)
        if obj is None:
            raise self._not_found(function)
        return copy.deepcopy(dict(obj))

    async def _update(
        self,
        resource: Resource,
        function: FunctionKey,
        mutate: manifests.Mutation,
        *,
        status: bool = False,
    ) -> Obj | None:
        """``_replace`` on the Function of ``function``."""
        obj = await self._object(resource, function)
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        try:
            return await self._writer.replace(resource, key, mutate, status=status)
        except Gone as exc:
            raise self._not_found(function) from exc

    # -- checks -------------------------------------------------------------------------

    def _latest(self, obj: Obj) -> FunctionVersion:
        return resources.latest_from_function(obj, package=resources.spec_package(obj))

    def _require_updatable(
        self, current: FunctionVersion, expected_revision_id: str | None
    ) -> None:
        if current.state is State.PENDING:
            raise errors.ResourceConflict(
                "The operation cannot be performed at this time. "
                "The function is currently in the following state: Pending"
            )
        if current.last_update_status is LastUpdateStatus.IN_PROGRESS:
            arn = names.function_arn(current.function_name, region=self._region)
            raise errors.ResourceConflict(
                "The operation cannot be performed at this time. "
                f"An update is in progress for resource: {arn}"
            )
        if expected_revision_id is not None and expected_revision_id != current.revision_id:
            raise errors.PreconditionFailed(_PRECONDITION)

    def _require_targets(self, alias: Alias, catalog: Catalog) -> None:
        for version in (alias.function_version, *alias.additional_version_weights):
            if version != LATEST and _target(alias.key, version) not in catalog.versions:
                raise self._not_found(alias.key, version)

    def _require_served(self, namespace: str) -> None:
        if self._namespaces is not None and namespace not in self._namespaces:
            raise errors.InvalidParameterValue(
                f"Namespace {namespace} is not served by this installation"
            )

    def _not_found(
        self, function: FunctionKey, qualifier: str | None = None
    ) -> errors.ResourceNotFound:
        arn = names.function_arn(function.name, qualifier, region=self._region)
        return errors.ResourceNotFound(f"Function not found: {arn}")

    def _alias_exists(self, alias: Alias) -> errors.ResourceConflict:
        arn = names.function_arn(alias.function_name, alias.name, region=self._region)
        return errors.ResourceConflict(f"Alias already exists: {arn}")

    def _now(self) -> str:
        """The current time in Lambda's ``LastModified`` form, from the injected clock."""
        return manifests.lambda_timestamp(self._clock())


def _target(function: FunctionKey, version: str) -> Target:
    return Target(function.namespace, function.name, version)


def _number(version: str) -> int:
    return 0 if version == LATEST else int(version)


def _owner(kind: str, obj: Mapping[str, Any] | None) -> Owner | None:
    # Items of a list carry no kind or apiVersion, so both are named here.
    if obj is None:
        return None
    metadata = obj["metadata"]
    return Owner(
        api_version=resources.API_VERSION,
        kind=kind,
        name=metadata["name"],
        uid=metadata["uid"],
    )
