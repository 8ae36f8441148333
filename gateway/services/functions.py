"""Function use cases of the management API: create, read, list, update, publish, delete.

Called by the routers in ``gateway.api.functions``; talks to the store through
``ManagementStore``. A new package is checked cheaply before the call is answered (the
zip's directory, a ``bootstrap`` for custom runtimes) and stored by content hash; the
version is then ``Pending`` (or ``$LATEST`` is ``InProgress``) while a background task
unpacks it, after which the store marks it ``Active``/``Successful`` (or ``Failed``).
That makes boto3's ``function_active_v2``/``function_updated_v2`` waiters meaningful,
and the invoke path answers 409 for a version that is still Pending.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from gateway.services import paging, validation
from gateway.services.ports import ManagementStore, StoredPackage
from kubelambda import errors, names
from kubelambda.models import LATEST, FunctionSettings, FunctionVersion, LastUpdateStatus, State

__all__ = ["ConfigurationChange", "FunctionService", "NewFunction", "function_name_only"]

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


@dataclass(frozen=True, slots=True)
class ConfigurationChange:
    """An UpdateFunctionConfiguration request: ``None`` leaves a setting as it is."""

    runtime: str | None = None
    role: str | None = None
    handler: str | None = None
    description: str | None = None
    timeout: int | None = None
    memory_size: int | None = None
    environment: Mapping[str, str] | None = None


class FunctionService:
    """Function use cases; owns the background unpack tasks (``aclose`` cancels those left)."""

    def __init__(
        self,
        store: ManagementStore,
        *,
        runtimes: Collection[str],
        package_grace_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._runtimes = tuple(runtimes)
        self._grace = package_grace_seconds
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        # Unpacking runs in threads, which a task cancellation cannot stop: this can.
        self._stopping = threading.Event()

    async def create(self, request: NewFunction) -> FunctionVersion:
        names.validate_function_name(request.name)
        runtime = validation.check_runtime(request.runtime, self._runtimes)
        handler = validation.check_handler(request.handler, runtime)
        environment = validation.check_environment(request.environment or {})
        tags = validation.check_tags(request.tags or {})
        role = validation.check_role(request.role)
        memory_size = validation.check_memory_size(request.memory_size)
        timeout = validation.check_timeout(request.timeout)
        description = validation.check_description(request.description)
        package = await self._store_package(request.zip_file, runtime)
        latest = FunctionVersion(
            function_name=request.name,
            version=LATEST,
            runtime=runtime,
            handler=handler,
            code_sha256=package.code_sha256,
            code_size=package.size,
            code_path=str(self._store.packages.directory(package.sha256_hex)),
            revision_id="",
            last_modified="",
            role=role,
            memory_size=memory_size,
            timeout=timeout,
            description=description,
            environment=environment,
            state=State.PENDING,
            last_update_status=LastUpdateStatus.IN_PROGRESS,
        )
        settings = FunctionSettings(function_name=request.name, tags=tags)
        created = await self._store.create_function(latest, settings, publish=request.publish)
        log.info(
            "function created function=%s runtime=%s code_sha256=%s",
            request.name,
            runtime,
            package.code_sha256,
        )
        self._settle_later(request.name, package)
        return created

    async def get(self, function_name: str, qualifier: str | None) -> FunctionVersion:
        """The version a (possibly qualified) name designates; an alias resolves to its
        primary version."""
        ref = names.parse_function_ref(function_name, qualifier)
        if ref.qualifier is None or ref.qualifier == LATEST or ref.qualifier.isdigit():
            return await self._store.get_version(ref.name, ref.qualifier or LATEST)
        alias = await self._store.get_alias(ref.name, ref.qualifier)
        return await self._store.get_version(ref.name, alias.function_version)

    async def settings(self, function_name: str) -> FunctionSettings:
        return await self._store.get_settings(names.parse_function_ref(function_name).name)

    async def list_functions(
        self, *, marker: str | None, max_items: int | None, all_versions: bool
    ) -> paging.Page[FunctionVersion]:
        limit = paging.limit(max_items)
        after = paging.decode(marker, (str, int))
        items = await self._store.list_functions(
            after=(str(after[0]), int(after[1])) if after else None,
            limit=limit + 1,
            all_versions=all_versions,
        )
        return paging.page(items, limit, lambda v: [v.function_name, _number(v.version)])

    async def list_versions(
        self, function_name: str, *, marker: str | None, max_items: int | None
    ) -> paging.Page[FunctionVersion]:
        name = function_name_only(function_name)
        limit = paging.limit(max_items)
        after = paging.decode(marker, (int,))
        items = await self._store.list_versions(
            name, after=int(after[0]) if after else -1, limit=limit + 1
        )
        return paging.page(items, limit, lambda v: [_number(v.version)])

    async def update_code(
        self, function_name: str, *, zip_file: bytes, publish: bool, revision_id: str | None
    ) -> FunctionVersion:
        name = function_name_only(function_name)
        current = await self._store.get_version(name, LATEST)
        package = await self._store_package(zip_file, current.runtime)
        updated = await self._store.begin_code_update(
            name,
            code_sha256=package.code_sha256,
            code_size=package.size,
            code_path=str(self._store.packages.directory(package.sha256_hex)),
            expected_revision_id=revision_id,
            publish=publish,
        )
        log.info("function code updated function=%s code_sha256=%s", name, package.code_sha256)
        self._settle_later(name, package)
        return updated

    async def update_configuration(
        self, function_name: str, change: ConfigurationChange, *, revision_id: str | None
    ) -> FunctionVersion:
        name = function_name_only(function_name)
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
        current = await self._store.get_version(name, LATEST)
        runtime = str(fields.get("runtime", current.runtime))
        handler = change.handler if change.handler is not None else current.handler
        fields["handler"] = validation.check_handler(handler or None, runtime)
        if runtime != current.runtime and (required := validation.required_file(runtime)):
            data = await asyncio.to_thread(
                self._store.packages.zip_path(_hex(current.code_sha256)).read_bytes
            )
            await asyncio.to_thread(self._store.packages.inspect, data, require=required)
        updated = await self._store.update_configuration(
            name, lambda v: v.with_changes(**fields), expected_revision_id=revision_id
        )
        log.info("function configuration updated function=%s fields=%s", name, sorted(fields))
        return updated

    async def publish(
        self,
        function_name: str,
        *,
        description: str | None,
        revision_id: str | None,
        code_sha256: str | None,
    ) -> FunctionVersion:
        name = function_name_only(function_name)
        if description is not None:
            validation.check_description(description)
        version = await self._store.publish_version(
            name,
            description=description,
            expected_revision_id=revision_id,
            code_sha256=code_sha256,
        )
        log.info("version published function=%s version=%s", name, version.version)
        return version

    async def delete(self, function_name: str, qualifier: str | None) -> None:
        ref = names.parse_function_ref(function_name, qualifier)
        if ref.qualifier is None:
            await self._store.delete_function(ref.name)
            log.info("function deleted function=%s", ref.name)
        else:
            await self._store.delete_version(ref.name, ref.qualifier)
            log.info("version deleted function=%s version=%s", ref.name, ref.qualifier)
        await self.collect_packages()

    async def collect_packages(self) -> list[str]:
        """Remove stored packages no version uses (nor serves) any more, past the grace
        period. Runs at start, after deletes and after each package settles, so disk use
        follows what is stored."""
        keep = {_hex(v.code_sha256) for v in (await self._store.catalog()).versions.values()}
        marker: str | None = None
        while True:
            versions, marker = await self.list_functions(
                marker=marker, max_items=1000, all_versions=True
            )
            keep.update(_hex(version.code_sha256) for version in versions)
            if marker is None:
                break
        removed = await asyncio.to_thread(
            self._store.packages.collect, keep, now=self._clock(), grace_seconds=self._grace
        )
        if removed:
            log.info("packages collected count=%d", len(removed))
        return removed

    async def resume(self) -> None:
        """Restart the unpacking of packages a previous run left Pending or InProgress."""
        marker: str | None = None
        while True:
            versions, marker = await self.list_functions(
                marker=marker, max_items=1000, all_versions=True
            )
            for version in versions:
                if version.state is State.PENDING or (
                    version.last_update_status is LastUpdateStatus.IN_PROGRESS
                ):
                    self._settle_later(version.function_name, _Stored(version))
            if marker is None:
                break
        await self.collect_packages()

    async def aclose(self) -> None:
        """Stop unpacking; the versions stay Pending and ``resume`` picks them up at the
        next start."""
        self._stopping.set()
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _store_package(self, data: bytes, runtime: str) -> StoredPackage:
        packages = self._store.packages
        await asyncio.to_thread(packages.inspect, data, require=validation.required_file(runtime))
        return await asyncio.to_thread(packages.save, data)

    def _settle_later(self, name: str, package: StoredPackage) -> None:
        task = asyncio.create_task(self._settle(name, package), name=f"unpack {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, name: str, package: StoredPackage) -> None:
        error: str | None = None
        try:
            await asyncio.to_thread(
                self._store.packages.unpack, package.sha256_hex, stop=self._stopping
            )
        except ValueError as exc:
            if self._stopping.is_set():
                return
            error = str(exc)
            log.warning(
                "package failed function=%s code_sha256=%s error=%s",
                name,
                package.code_sha256,
                error,
            )
        except Exception:
            # Never leave the version Pending forever: whatever broke, it failed.
            error = "Could not unpack the deployment package."
            log.exception("package failed function=%s code_sha256=%s", name, package.code_sha256)
        try:
            await self._store.finish_package(name, package.code_sha256, error=error)
        except errors.LambdaError as exc:
            log.warning("package settle failed function=%s error=%s", name, exc.message)
            return
        # A finished code update may have left the previous package unused.
        await self.collect_packages()


@dataclass(frozen=True, slots=True)
class _Stored:
    """A package known only from a stored version (when resuming after a restart)."""

    version: FunctionVersion

    @property
    def sha256_hex(self) -> str:
        return _hex(self.version.code_sha256)

    @property
    def size(self) -> int:
        return self.version.code_size

    @property
    def code_sha256(self) -> str:
        return self.version.code_sha256


def function_name_only(function_name: str) -> str:
    """The name in an unqualified name or ARN (operations on a whole function refuse a
    qualifier rather than silently ignoring it)."""
    ref = names.parse_function_ref(function_name)
    if ref.qualifier is not None:
        raise errors.InvalidParameterValue(
            f"This operation does not accept a qualified function name or ARN: {function_name}"
        )
    return ref.name


def _number(version: str) -> int:
    return 0 if version == LATEST else int(version)


def _hex(code_sha256: str) -> str:
    return base64.b64decode(code_sha256).hex()
