"""Function use cases of the management API: create, read, list, update, publish, delete.

Called by the routers in ``gateway.api.functions`` with the caller's namespace; talks to
the store through ``ManagementStore`` and to packages through ``CodeStore``. A new
package is checked cheaply before the call is answered (the zip's directory, a
``bootstrap`` for custom runtimes) and stored by content hash; the version is then
``Pending`` (or ``$LATEST`` is ``InProgress``) until the controller settles the package
(``Active``/``Successful``, or ``Failed``). That makes boto3's ``function_active_v2`` /
``function_updated_v2`` waiters meaningful, and the invoke path answers 409 for a
version that is still Pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from gateway.services import paging, validation
from kubelambda import errors, names, zips
from kubelambda.models import (
    LATEST,
    CodePackage,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    LastUpdateStatus,
    State,
)
from kubelambda.ports.code import CodeStore
from kubelambda.ports.management import ManagementStore

__all__ = ["ConfigurationChange", "FunctionService", "NewFunction", "function_key_only"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NewFunction:
    """A CreateFunction request, parsed (the zip decoded) but not yet validated."""

    name: str
    runtime: str
    role: str
    handler: str | None
    zip_file: bytes
    description: str = ""
    timeout: int = 3
    memory_size: int = 128
    environment: Mapping[str, str] | None = None
    tags: Mapping[str, str] | None = None
    publish: bool = False
    # DeadLetterConfig.TargetArn: None for the platform's default topic, "" for none.
    dead_letter_target_arn: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigurationChange:
    """An UpdateFunctionConfiguration request: ``None`` leaves a setting as it is (a
    ``dead_letter_target_arn`` of ``""`` turns dead letters off)."""

    runtime: str | None = None
    role: str | None = None
    handler: str | None = None
    description: str | None = None
    timeout: int | None = None
    memory_size: int | None = None
    environment: Mapping[str, str] | None = None
    dead_letter_target_arn: str | None = None


class FunctionService:
    def __init__(
        self, store: ManagementStore, code: CodeStore, *, runtimes: Collection[str]
    ) -> None:
        self._store = store
        self._code = code
        self._runtimes = tuple(runtimes)

    async def create(self, namespace: str, request: NewFunction) -> FunctionVersion:
        names.validate_function_name(request.name)
        runtime = validation.check_runtime(request.runtime, self._runtimes)
        handler = validation.check_handler(request.handler, runtime)
        environment = validation.check_environment(request.environment or {})
        tags = validation.check_tags(request.tags or {})
        role = validation.check_role(request.role)
        memory_size = validation.check_memory_size(request.memory_size)
        timeout = validation.check_timeout(request.timeout)
        description = validation.check_description(request.description)
        dead_letter_target_arn = (
            None
            if request.dead_letter_target_arn is None
            else validation.check_dead_letter_target(request.dead_letter_target_arn)
        )
        package = await self._store_package(request.zip_file, runtime)
        latest = FunctionVersion(
            namespace=namespace,
            function_name=request.name,
            version=LATEST,
            runtime=runtime,
            handler=handler,
            code_sha256=package.code_sha256,
            code_size=package.size,
            revision_id="",
            last_modified="",
            role=role,
            memory_size=memory_size,
            timeout=timeout,
            description=description,
            environment=environment,
            dead_letter_target_arn=dead_letter_target_arn,
            state=State.PENDING,
            last_update_status=LastUpdateStatus.IN_PROGRESS,
        )
        settings = FunctionSettings(namespace=namespace, function_name=request.name, tags=tags)
        created = await self._store.create_function(latest, settings, publish=request.publish)
        log.info(
            "function created namespace=%s function=%s runtime=%s code_sha256=%s",
            namespace,
            request.name,
            runtime,
            package.code_sha256,
        )
        return created

    async def get(
        self, namespace: str, function_name: str, qualifier: str | None
    ) -> FunctionVersion:
        """The version a (possibly qualified) name designates; an alias resolves to its
        primary version."""
        ref = names.parse_function_ref(function_name, qualifier, namespace=namespace)
        if ref.qualifier is None or ref.qualifier == LATEST or ref.qualifier.isdigit():
            return await self._store.get_version(ref.key, ref.qualifier or LATEST)
        alias = await self._store.get_alias(ref.key, ref.qualifier)
        return await self._store.get_version(ref.key, alias.function_version)

    async def settings(self, function: FunctionKey) -> FunctionSettings:
        return await self._store.get_settings(function)

    async def list_functions(
        self, namespace: str, *, marker: str | None, max_items: int | None, all_versions: bool
    ) -> paging.Page[FunctionVersion]:
        limit = paging.limit(max_items)
        after = paging.decode(marker, (str, int))
        items = await self._store.list_functions(
            namespace,
            after=(str(after[0]), int(after[1])) if after else None,
            limit=limit + 1,
            all_versions=all_versions,
        )
        return paging.page(items, limit, lambda v: [v.function_name, _number(v.version)])

    async def list_versions(
        self, namespace: str, function_name: str, *, marker: str | None, max_items: int | None
    ) -> paging.Page[FunctionVersion]:
        function = function_key_only(namespace, function_name)
        limit = paging.limit(max_items)
        after = paging.decode(marker, (int,))
        items = await self._store.list_versions(
            function, after=int(after[0]) if after else -1, limit=limit + 1
        )
        return paging.page(items, limit, lambda v: [_number(v.version)])

    async def update_code(
        self,
        namespace: str,
        function_name: str,
        *,
        zip_file: bytes,
        publish: bool,
        revision_id: str | None,
    ) -> FunctionVersion:
        function = function_key_only(namespace, function_name)
        current = await self._store.get_version(function, LATEST)
        package = await self._store_package(zip_file, current.runtime)
        updated = await self._store.begin_code_update(
            function, package, expected_revision_id=revision_id, publish=publish
        )
        log.info(
            "function code updated namespace=%s function=%s code_sha256=%s",
            namespace,
            function.name,
            package.code_sha256,
        )
        return updated

    async def update_configuration(
        self,
        namespace: str,
        function_name: str,
        change: ConfigurationChange,
        *,
        revision_id: str | None,
    ) -> FunctionVersion:
        function = function_key_only(namespace, function_name)
        fields: dict[str, object] = {}
        if change.runtime is not None:
            fields["runtime"] = validation.check_runtime(change.runtime, self._runtimes)
        if change.role is not None:
            fields["role"] = validation.check_role(change.role)
        if change.description is not None:
            fields["description"] = validation.check_description(change.description)
        if change.timeout is not None:
            fields["timeout"] = validation.check_timeout(change.timeout)
        if change.memory_size is not None:
            fields["memory_size"] = validation.check_memory_size(change.memory_size)
        if change.environment is not None:
            fields["environment"] = validation.check_environment(change.environment)
        if change.dead_letter_target_arn is not None:
            fields["dead_letter_target_arn"] = validation.check_dead_letter_target(
                change.dead_letter_target_arn
            )
        current = await self._store.get_version(function, LATEST)
        runtime = str(fields.get("runtime", current.runtime))
        handler = change.handler if change.handler is not None else current.handler
        fields["handler"] = validation.check_handler(handler or None, runtime)
        if runtime != current.runtime and (required := validation.required_file(runtime)):
            data = b"".join([chunk async for chunk in self._code.open(current.package.sha256_hex)])
            await asyncio.to_thread(zips.inspect, data, require=required)
        updated = await self._store.update_configuration(
            function, lambda v: v.with_changes(**fields), expected_revision_id=revision_id
        )
        log.info(
            "function configuration updated namespace=%s function=%s fields=%s",
            namespace,
            function.name,
            sorted(fields),
        )
        return updated

    async def publish(
        self,
        namespace: str,
        function_name: str,
        *,
        description: str | None,
        revision_id: str | None,
        code_sha256: str | None,
    ) -> FunctionVersion:
        function = function_key_only(namespace, function_name)
        if description is not None:
            validation.check_description(description)
        version = await self._store.publish_version(
            function,
            description=description,
            expected_revision_id=revision_id,
            code_sha256=code_sha256,
        )
        log.info(
            "version published namespace=%s function=%s version=%s",
            namespace,
            function.name,
            version.version,
        )
        return version

    async def delete(self, namespace: str, function_name: str, qualifier: str | None) -> None:
        ref = names.parse_function_ref(function_name, qualifier, namespace=namespace)
        if ref.qualifier is None:
            await self._store.delete_function(ref.key)
            log.info("function deleted namespace=%s function=%s", namespace, ref.name)
        else:
            await self._store.delete_version(ref.key, ref.qualifier)
            log.info(
                "version deleted namespace=%s function=%s version=%s",
                namespace,
                ref.name,
                ref.qualifier,
            )

    async def _store_package(self, data: bytes, runtime: str) -> CodePackage:
        await asyncio.to_thread(zips.inspect, data, require=validation.required_file(runtime))
        return await self._code.put(data)


def function_key_only(namespace: str, function_name: str) -> FunctionKey:
    """The function an unqualified name or ARN names (operations on a whole function
    refuse a qualifier rather than silently ignoring it)."""
    ref = names.parse_function_ref(function_name, namespace=namespace)
    if ref.qualifier is not None:
        raise errors.InvalidParameterValue(
            f"This operation does not accept a qualified function name or ARN: {function_name}"
        )
    return ref.key


def _number(version: str) -> int:
    return 0 if version == LATEST else int(version)
