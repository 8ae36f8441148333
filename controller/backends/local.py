"""The embedded-mode instance backend: every instance is a local runtime-agent process.

Implements ``InstanceBackend`` for the controller (the autoscaler calls ``scale``, the
package settler ``prepare``) and ``EndpointSource`` for the gateway (``endpoints`` and
their changes). Packages come from the ``CodeStore`` and are unpacked once per digest
under ``<home>/code/unpacked``; an instance's ``LAMBDA_TASK_ROOT`` is the directory of
the package its version runs.

``scale`` is declarative and returns at once: it spawns or stops processes, and a
supervisor task per instance turns it into an ``Endpoint`` when the agent reports ready,
or records a failure (with the tail of its log) when it exits or stays silent. An
endpoint always leaves ``endpoints()`` (and subscribers hear of it) before its process
is told to stop, so the gateway never sends work to a draining instance. New instances
take a spare agent (``local_spares``) when one is waiting; a spare has also started a
python runtime of the python runtime the last instance ran, for its first slot. Spares
are forked by a zygote (``local_zygote``: a process that imported the agent once, so a
spare costs a fork, about a millisecond, instead of an interpreter's start and the
agent's imports, ~50 ms); without one (it died within ``_ZYGOTE_RESTART_SECONDS`` of its
start, or the backend was given none) they are spawned.

An agent may host several execution environments of its function, as many as fit
``environments_per_agent`` runtimes (64 of a concurrency-1 function, Lambda's default,
four of concurrency 16): they share one agent's event loop where an agent each would
wake one more process per batch of invocations (on 2 cores, an agent costs more CPU per
invocation than the gateway). An environment of concurrency 1 runs in a runtime with a
``TMPDIR`` and ``HOME`` of its own (``kubelambda_agent.environment``); those of higher
concurrency share the agent's, as the runtimes of one environment do. The autoscaler still
counts environments: a scale-up places one in an agent of the version with room (its
runtimes start on their first invocations, cold starts with their Init Duration) and starts
an agent only when none has room; a scale-down stops whole agents, newest first, and
takes the rest from the next one. An agent's endpoint serves as many invocations at once
as its environments' concurrency sums to, and the agent is told their number on its stdin
(``kubelambda_agent.control``), so it stops the runtimes of environments given up at
once. Provisioned environments keep an agent each: they initialise ahead, alone.

Starts are admitted within the host's budget (``local_capacity``: memory, starts at
once, processes). What a scale call wants beyond it is deferred, not dropped: the
latest wanted count of every target is kept, and deferred starts go, provisioned ones
first and then oldest want first, as soon as capacity frees (an instance became ready,
failed, or stopped), without waiting for the autoscaler's next call. Meanwhile the
requests wait in the gateway's activator, and ``starts_deferred`` tells the autoscaler
to reclaim idle instances of other targets. Spare agents never defer a start: they are
left out of the plan, a start takes one, and those that no longer fit beside the
instances stop. An instance larger than the whole budget is a permanent start failure
(``CapacityExceeded``), not a wait.

Given ``users`` (the platform runs as root), every instance runs as its function's user
(``local_users``), which cannot enter the home: it runs a copy of its package made for
its function, has a private ``TMPDIR`` removed when it goes (both under the platform's
instance files, ``local_files``), and writes its log in a directory its function's group
may write to. Without ``users`` instances run as the platform's user, from the unpacked
package itself.

Memory: ``MemorySize`` is passed to the function as ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``
and counted against the budget, but not enforced per process in local mode; processes
share the host's memory (Kubernetes mode sets container limits).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import stat
import threading
import time
import uuid
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubelambda_agent import config as agent_config

from controller import errors
from controller.backends import (
    local_admission,
    local_capacity,
    local_env,
    local_files,
    local_host,
    local_process,
    local_spares,
    local_users,
    local_zygote,
)
from controller.metrics import ControllerMetrics
from kubelambda import instance_environment, runtimes, zips
from kubelambda.models import (
    DEFAULT_IDLE_TIMEOUT_SECONDS,
    CodePackage,
    FunctionKey,
    FunctionVersion,
    Target,
)
from kubelambda.ports.catalog import Catalog, CatalogSource
from kubelambda.ports.code import CodeStore, PackageMissing
from kubelambda.ports.endpoints import Endpoint
from kubelambda.ports.instances import BackendClosed, PackageRejected, StartFailure

__all__ = ["LocalProcessBackend"]

logger = logging.getLogger(__name__)

# A target whose instances keep failing waits this long before the next try, doubling
# per failure (0.5 s, 1 s, 2 s, ...) up to the cap, like a crash-looping pod.
_FIRST_BACKOFF_SECONDS = 0.5
_SPARE_DELAY_SECONDS = 0.05
# A zygote that died is replaced no sooner than this after the last one started.
_ZYGOTE_RESTART_SECONDS = 10.0
# The python runtime spares start ahead of need until an instance of another one starts:
# the runtime of the platform's images (``kubelambda.launch.cluster_adapters``).
_SPARE_RUNTIME = "python3.11"


@dataclass(frozen=True, slots=True)
class _Failures:
    consecutive: int
    reason: str
    retriable: bool
    retry_at: float


class LocalProcessBackend:
    """``InstanceBackend`` and ``EndpointSource`` on local processes under ``home``.

    ``ready_timeout``: how long an agent may take to report ready before it is killed
    and counted as a failure. ``stop_grace_extra``: seconds past the function timeout a
    draining agent gets before SIGKILL. ``max_backoff``: the longest wait between starts
    of a target whose starts keep failing. ``spare_agents``: agents kept started ahead
    of need (0 makes every start fully cold). ``log_max_bytes``: where each instance's
    log is rotated (one previous file is kept, ``<instance>.log.1``). ``users``: run
    every instance as its function's user (see the module's docstring). ``budget``:
    what instances may take of the host (default: the host's, with default limits).
    ``environments_per_agent``: how many environments of a concurrency-1 function one
    agent hosts (1: an agent each); of concurrency C, that many runtimes' worth (at
    least one environment).
    """

    def __init__(
        self,
        home: Path,
        *,
        code: CodeStore,
        region: str,
        ready_timeout: float = 30.0,
        stop_grace_extra: float = 3.0,
        max_backoff: float = 10.0,
        spare_agents: int = 2,
        metrics: ControllerMetrics | None = None,
        command: Sequence[str] = local_process.AGENT_COMMAND,
        zygote_command: Sequence[str] | None = local_zygote.ZYGOTE_COMMAND,
        log_max_bytes: int = local_env.DEFAULT_LOG_MAX_BYTES,
        host_environ: Mapping[str, str] | None = None,
        users: local_users.InstanceUsers | None = None,
        budget: local_capacity.Budget | None = None,
        environments_per_agent: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._home = home
        self._code = code
        self._unpacked = home / "code" / "unpacked"
        self._region = region
        self._ready_timeout = ready_timeout
        self._stop_grace_extra = stop_grace_extra
        self._max_backoff = max_backoff
        self._metrics = metrics
        self._command = tuple(command)
        self._zygote_command = None if zygote_command is None else tuple(zygote_command)
        self._zygote: local_zygote.Zygote | None = None
        # When the last zygote was started: one that keeps dying is not restarted at once.
        self._zygote_started_at = -math.inf
        # A refill and a start that found no spare may both want one started.
        self._zygote_starting = asyncio.Lock()
        self._log_max_bytes = log_max_bytes
        self._host_environ = dict(os.environ if host_environ is None else host_environ)
        self._clock = clock
        self._environments_per_agent = environments_per_agent
        self._users = users
        self._files = None if users is None else local_files.InstanceFiles(home)
        self._instances: dict[Target, list[local_process.LocalProcess]] = {}
        self._admission = local_admission.Admission(
            budget
            or local_capacity.Budget.for_host(local_host.read_host(), local_capacity.Limits()),
            metrics=metrics,
        )
        # Told to stop, not gone yet: they still hold their memory and a process.
        self._draining: set[local_process.LocalProcess] = set()
        self._admitting = False
        self._failures: dict[Target, _Failures] = {}
        self._listeners: list[Callable[[Target], None]] = []
        # The ready endpoints of targets that have some, as the invoke path asks for them
        # two or three times an invocation: dropped by ``_changed``, which every change of
        # them goes through (the listeners rely on that too).
        self._ready_endpoints: dict[Target, tuple[Endpoint, ...]] = {}
        # The package each version runs now, once ``follow`` is given the catalog.
        self._running: dict[Target, str] = {}
        # Each function's idle timeout, from the catalog too: its instances stop the
        # runtimes beyond their first that stay idle that long.
        self._idle_timeouts: dict[FunctionKey, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._spares = local_spares.SparePool(spare_agents, self._prestart, self._spare_room)
        # The python runtime of the instance last started (see ``_spare_runtime``).
        self._spare_runtime_name = _SPARE_RUNTIME
        self._closed = False
        # Unpacking runs in threads, which a task cancellation cannot stop: this can.
        self._stopping = threading.Event()
        # Spawning awaits; two overlapping calls for one target would both see it short.
        self._scaling = asyncio.Lock()

    async def scale(
        self, version: FunctionVersion, *, replicas: int, concurrency: int, provisioned: int = 0
    ) -> None:
        """Run ``replicas`` instances of ``version``; returns without waiting for readiness.

        Instances of an older revision of the version (``$LATEST`` after an update),
        running another package (an update that settled keeps its revision id but
        changes the code that runs) or with another concurrency are replaced: they leave
        at once, new ones start.
        """
        async with self._scaling:
            if not self._closed:
                await self._scale(version, replicas, concurrency, provisioned)

    async def _scale(
        self, version: FunctionVersion, replicas: int, concurrency: int, provisioned: int
    ) -> None:
        target = version.target
        revision = _revision(version, concurrency)
        live = self._instances.setdefault(target, [])
        for stale in [p for p in live if p.revision != revision]:
            self._begin_stop(stale, reason="revision changed")
        excess = _environments(live) - replicas
        if excess > 0:
            # Keep provisioned and ready instances; of the rest, stop the newest first
            # (an agent hosting more environments than are to go gives some up).
            order = sorted(
                live, key=lambda p: (p.provisioned, p.endpoint is not None, -p.spawned_at)
            )
            for victim in order:
                if excess <= 0:
                    break
                if victim.environments <= excess:
                    excess -= victim.environments
                    self._begin_stop(victim, reason="scale down")
                else:
                    self._resize(victim, victim.environments - excess)
                    excess = 0
        if not live and replicas == 0:
            # Nothing left to run: forget the target, or deleted versions pile up here.
            self._instances.pop(target, None)
            self._failures.pop(target, None)
            self._admission.forget(target)
            return
        budget = self._admission.budget
        if replicas > _environments(live) and not budget.fits_at_all(version.memory_size):
            if not self._backing_off(target):
                self._start_failed(
                    target, errors.CapacityExceeded(version.memory_size, budget.memory_mb)
                )
            self._admission.forget(target)
            return
        self._admission.want(
            version,
            replicas=replicas,
            concurrency=concurrency,
            provisioned=provisioned,
            per_start=self._hosting(concurrency, provisioned=False),
        )
        await self._admit()

    async def prepare(self, package: CodePackage, *, function: FunctionKey) -> None:
        """Unpack ``package`` (once per digest) where instances will run it and, when
        instances run as users of their own, copy it for ``function``'s user: a first
        start then finds its code ready instead of copying it on the cold start's path."""
        unpacked = await self._task_root(package)
        if self._files is None or self._users is None:
            return
        user = self._users.user_for(function.namespace, function.name)
        try:
            await asyncio.to_thread(
                self._files.code, unpacked, sha256_hex=package.sha256_hex, user=user
            )
        except OSError as exc:
            raise PackageRejected(f"cannot copy the package for the function: {exc}") from exc

    async def discard(self, sha256_hexes: Collection[str]) -> None:
        """Remove the unpacked directories of packages the code store collected."""
        for sha256_hex in sha256_hexes:
            await asyncio.to_thread(zips.remove_tree, self._unpacked / sha256_hex)
            if self._files is not None:
                await asyncio.to_thread(self._files.discard_code, sha256_hex)

    def start_spares(self) -> None:
        """Start the spare agents now, at the platform's start: the first cold start
        after it would otherwise pay for a fully cold agent."""
        self._maybe_refill()

    def follow(self, catalog: CatalogSource) -> Callable[[], None]:
        """Route only to instances running the package each version runs *now*, from
        the moment the store publishes it: a ``$LATEST`` update reported Successful
        reaches no instance of the old code, though the next scale pass replaces them.
        Returns a function that stops following."""

        def on_catalog(snapshot: Catalog) -> None:
            running = {
                target: version.running_package.sha256_hex
                for target, version in snapshot.versions.items()
            }
            changed = {
                target
                for target in set(running) | set(self._running)
                if running.get(target) != self._running.get(target)
            }
            self._running = running
            self._idle_timeouts = {
                key: settings.idle_timeout_seconds for key, settings in snapshot.settings.items()
            }
            for target in changed & set(self._instances):
                self._changed(target)

        return catalog.subscribe(on_catalog)

    def endpoints(self, target: Target) -> Sequence[Endpoint]:
        found = self._ready_endpoints.get(target)
        if found is None:
            found = tuple(p.endpoint for p in self._ready(target) if p.endpoint is not None)
            if found:
                self._ready_endpoints[target] = found
        return found

    def ready_instances(self, target: Target) -> int:
        """Ready execution environments: an agent hosting several counts each."""
        return _environments(self._ready(target))

    def _ready(self, target: Target) -> list[local_process.LocalProcess]:
        running = self._running.get(target)
        return [
            p
            for p in self._instances.get(target, ())
            # ``revision`` names the package an instance runs (see ``_revision``).
            if p.endpoint is not None and (running is None or p.revision[1] == running)
        ]

    def starts_deferred(self) -> Collection[Target]:
        return self._admission.deferred()

    def subscribe(self, listener: Callable[[Target], None]) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def start_failure(self, target: Target) -> StartFailure | None:
        failures = self._failures.get(target)
        if failures is None:
            return None
        return StartFailure(failures.consecutive, failures.reason, failures.retriable)

    @staticmethod
    async def reap_leftovers(home: Path) -> None:
        """Kill what instances a platform on ``home`` left running (it was killed
        outright, or on a host without a parent-death signal), and the files of its
        instances; call before starting."""
        instance_files = local_files.recorded(home)
        killed = await local_process.reap_home(home, instance_files=instance_files)
        if killed:
            logger.warning("killed processes an earlier run left behind count=%d", killed)
        await asyncio.to_thread(local_files.remove_leftovers, home)

    async def aclose(self) -> None:
        """Stop every instance (draining, then killing after the grace) and wait for all."""
        self._closed = True
        self._stopping.set()
        for instances in list(self._instances.values()):
            for instance in list(instances):
                self._begin_stop(instance, reason="backend closing")
        while self._tasks:
            # wait, not gather: a cancelled aclose must not cancel the stops themselves.
            await asyncio.wait(set(self._tasks))
        await self._spares.aclose()
        if self._zygote is not None:
            await self._zygote.aclose()
        if self._files is not None:
            await asyncio.to_thread(self._files.remove)

    async def _start(
        self, version: FunctionVersion, *, concurrency: int, provisioned: bool
    ) -> None:
        target = version.target
        instance_id = uuid.uuid4().hex
        init_type = (
            instance_environment.InitializationType.PROVISIONED
            if provisioned
            else instance_environment.InitializationType.ON_DEMAND
        )
        capacity = self._hosting(concurrency, provisioned=provisioned)
        try:
            instance = await self._launch(
                version, instance_id, concurrency, capacity, provisioned, init_type
            )
        except BackendClosed:
            await self._release(instance_id)
            return
        except errors.InstanceStartError as exc:
            await self._release(instance_id)
            self._start_failed(target, exc)
            return
        self._instances.setdefault(target, []).append(instance)
        if self._metrics is not None:
            self._metrics.started(target, initialization_type=init_type)
        logger.info(
            "instance spawned namespace=%s function=%s version=%s instance=%s pid=%d "
            "initialization_type=%s max_environments=%d",
            target.namespace,
            target.function_name,
            target.version,
            instance_id,
            instance.pid,
            init_type,
            capacity,
        )
        self._track(self._supervise(instance, concurrency))
        if self._closed:
            # Closing began while this one was starting: it stops with the others.
            self._begin_stop(instance, reason="backend closing")

    async def _launch(
        self,
        version: FunctionVersion,
        instance_id: str,
        concurrency: int,
        capacity: int,
        provisioned: bool,
        init_type: instance_environment.InitializationType,
    ) -> local_process.LocalProcess:
        """Prepare the code, the files and the environment, then spawn (or assign a
        spare) agent, able to host ``capacity`` environments. Every way it can fail is
        an ``InstanceStartError``."""
        target = version.target
        if not runtimes.is_provided(version.runtime):
            self._spare_runtime_name = version.runtime
        user = (
            None
            if self._users is None
            else self._users.user_for(target.namespace, target.function_name)
        )
        try:
            task_root = await self._task_root(version.running_package)
        except PackageRejected as exc:
            raise errors.CodeUnavailable(str(exc)) from exc
        log_path = local_env.log_path(self._home, version, instance_id)
        try:
            task_root, private, runtime = await self._instance_files(
                task_root, version, instance_id, log_path.parent, user
            )
        except OSError as exc:
            raise errors.InstanceStartError(f"cannot prepare the instance's files: {exc}") from exc
        try:
            environ = local_env.instance_environment(
                version,
                task_root=task_root,
                instance_id=instance_id,
                concurrency=concurrency * capacity,
                environment_concurrency=concurrency if capacity > 1 else None,
                runtime_idle_seconds=self._idle_timeouts.get(
                    version.key, DEFAULT_IDLE_TIMEOUT_SECONDS
                ),
                initialization_type=init_type,
                region=self._region,
                started=datetime.now(UTC),
                host_environ=self._host_environ,
                invoke_token=secrets.token_urlsafe(32),
                log_max_bytes=self._log_max_bytes,
                private_directory=private,
                runtime_directory=runtime,
                usable=None if self._users is None else self._users.can_run,
            )
            return await self._spawn(
                version, instance_id, concurrency, capacity, provisioned, environ, log_path, user
            )
        except OSError as exc:
            raise errors.InstanceStartError(f"cannot spawn agent: {exc}") from exc

    async def _instance_files(
        self,
        task_root: Path,
        version: FunctionVersion,
        instance_id: str,
        log_directory: Path,
        user: local_users.InstanceUser | None,
    ) -> tuple[Path, Path | None, Path | None]:
        """The instance's task root, private directory and runtime directory (the last
        two none when it runs as the platform's user); its log directory exists,
        writable by its user. Only a package ``prepare`` did not copy for the user (the
        platform restarted since) is copied now, in a thread."""
        private = self._directories(log_directory, instance_id, user)
        if self._files is None or user is None:
            return task_root, None, None
        sha256_hex = version.running_package.sha256_hex
        code = self._files.copied_code(sha256_hex=sha256_hex, user=user)
        if code is None:
            code = await asyncio.to_thread(
                self._files.code, task_root, sha256_hex=sha256_hex, user=user
            )
        return code, private, self._files.runtime

    def _directories(
        self, log_directory: Path, instance_id: str, user: local_users.InstanceUser | None
    ) -> Path | None:
        """Make the log directory (shared with the instance's user, if any) and the
        private one. On the event loop on purpose: a few mkdir and chown calls cost less
        than the two thread hops around them, which a busy host stretches to
        milliseconds on the cold start's path."""
        log_directory.mkdir(parents=True, exist_ok=True)
        if self._files is None or user is None:
            return None
        local_files.share_log_directory(log_directory, user)
        return self._files.private_directory(instance_id, user)

    async def _release(self, instance_id: str) -> None:
        """Remove what the instance had on disk of its own (its processes are gone)."""
        if self._files is not None:
            await asyncio.to_thread(self._files.release, instance_id)

    async def _spawn(
        self,
        version: FunctionVersion,
        instance_id: str,
        concurrency: int,
        capacity: int,
        provisioned: bool,
        environ: Mapping[str, str],
        log_path: Path,
        user: local_users.InstanceUser | None,
    ) -> local_process.LocalProcess:
        spare = await self._spares.take()
        return local_process.assign(
            spare,
            target=version.target,
            instance_id=instance_id,
            revision=_revision(version, concurrency),
            provisioned=provisioned,
            environ=environ,
            log_path=log_path,
            assigned_at=self._clock(),
            stop_grace=version.timeout + self._stop_grace_extra,
            memory_mb=version.memory_size,
            user=user,
            capacity=capacity,
        )

    async def _task_root(self, package: CodePackage) -> Path:
        directory = self._unpacked / package.sha256_hex
        if directory.exists():
            return directory
        try:
            location = await self._code.location(package.sha256_hex)
            unpacked = await asyncio.to_thread(
                zips.unpack, Path(location), directory, stop=self._stopping
            )
            await asyncio.to_thread(_owner_only, unpacked)
            return unpacked
        except PackageMissing as exc:
            raise PackageRejected(f"The deployment package is missing: {exc}") from exc
        except zips.UnpackError as exc:
            if self._stopping.is_set():
                raise BackendClosed("unpacking was interrupted by a shutdown") from exc
            raise PackageRejected(str(exc)) from exc

    async def _prestart(self) -> local_process.Spare:
        runtime_command = await asyncio.to_thread(self._spare_runtime)
        log_path = self._home / "logs" / "spare-agents.log"
        zygote = await self._running_zygote(log_path)
        if zygote is not None:
            try:
                return await zygote.fork(
                    environ=local_process.spare_environment(runtime_command), log_path=log_path
                )
            except local_zygote.ZygoteGone as exc:
                logger.warning("agent zygote unusable, spawning the spare error=%s", exc)
        return await local_process.prestart(
            home=self._home,
            host_environ=self._inherited_environ(),
            log_path=log_path,
            command=self._command,
            cwd=self._home,
            runtime_command=runtime_command,
        )

    async def _running_zygote(self, log_path: Path) -> local_zygote.Zygote | None:
        """The zygote spares are forked from, started if none runs; ``None`` without a
        zygote command, or within ``_ZYGOTE_RESTART_SECONDS`` of the last one's start."""
        async with self._zygote_starting:
            if self._zygote is not None and self._zygote.alive:
                return self._zygote
            if self._zygote_command is None or self._closed:
                return None
            if self._clock() - self._zygote_started_at < _ZYGOTE_RESTART_SECONDS:
                return None
            if self._zygote is not None:
                await self._zygote.aclose()
            self._zygote_started_at = self._clock()
            try:
                self._zygote = await local_zygote.Zygote.start(
                    command=self._zygote_command,
                    environ=local_process.platform_environment(
                        self._inherited_environ(), home=self._home
                    ),
                    log_path=log_path,
                    cwd=self._home,
                )
            except OSError as exc:
                logger.error("cannot start the agent zygote error=%s", exc)
                self._zygote = None
            return self._zygote

    def _inherited_environ(self) -> dict[str, str]:
        return {
            name: self._host_environ[name]
            for name in local_env.INHERITED_VARIABLES
            if name in self._host_environ
        }

    def _spare_runtime(self) -> list[str] | None:
        """The command a spare starts a python runtime with, ahead of need: the one an
        instance of the python runtime last started would run (see ``local_env``), so
        that the next one's first slot can take it (``kubelambda_agent.prestarted``)."""
        python = runtimes.find_python(
            self._spare_runtime_name,
            self._host_environ,
            usable=None if self._users is None else self._users.can_run,
        )
        if python is None:
            return None
        if self._files is None:
            return agent_config.python_runtime_command(python)
        try:
            runtime_dir = self._files.runtime
        except OSError as exc:
            # The spare is still worth having; the instance starts its runtime itself.
            logger.warning("cannot prepare the instance files error=%s", exc)
            return None
        return agent_config.python_runtime_command(python, str(runtime_dir))

    def _maybe_refill(self) -> None:
        """Top up the spare agents, but not while instances start, and only a moment
        after the last became ready: on a small host a spare's start would slow down
        the cold start, and then the first invocation, that someone is waiting for.
        Spares are processes of the budget: none while starts are deferred, and no more
        than the budget has room for."""
        usage = self._usage()
        if not self._closed and not usage.starting and not self.starts_deferred():
            self._spares.top_up(after=_SPARE_DELAY_SECONDS)

    def _spare_room(self) -> int:
        """How many more spares fit in the budget beside what runs now."""
        free = self._admission.budget.max_processes - self._usage().processes
        return max(0, free // local_capacity.SPARE_PROCESSES)

    async def _supervise(self, instance: local_process.LocalProcess, concurrency: int) -> None:
        target = instance.target
        try:
            host, port = await instance.wait_ready(self._ready_timeout)
        except errors.InstanceStartError as exc:
            self._forget(instance)
            if not instance.stopping:
                self._record_failure(target, exc)
                logger.warning(
                    "instance failed to start namespace=%s function=%s version=%s instance=%s "
                    "error=%s log_tail=%r",
                    target.namespace,
                    target.function_name,
                    target.version,
                    instance.instance_id,
                    exc,
                    instance.log_tail(),
                )
            await self._release(instance.instance_id)
            self._capacity_freed()
            self._maybe_refill()
            return
        if instance.stopping:
            return
        instance.endpoint = Endpoint(
            target,
            instance.instance_id,
            host,
            port,
            instance.serves,
            token=instance.invoke_token,
        )
        # It may have been given more environments while it started.
        instance.tell_environments()
        self._failures.pop(target, None)
        start_seconds = self._clock() - instance.spawned_at
        if self._metrics is not None:
            self._metrics.became_ready(target, seconds=start_seconds)
        logger.info(
            "instance ready namespace=%s function=%s version=%s instance=%s address=%r port=%d "
            "start_ms=%.1f",
            target.namespace,
            target.function_name,
            target.version,
            instance.instance_id,
            host,
            port,
            start_seconds * 1000,
        )
        self._changed(target)
        # A start slot is free: a deferred start may take it.
        self._capacity_freed()
        self._maybe_refill()
        returncode = await instance.process.wait()
        if instance.stopping:
            return
        # Reported the moment it is known, before anything else can observe the loss.
        logger.warning(
            "instance exited unexpectedly namespace=%s function=%s version=%s instance=%s "
            "returncode=%s log_tail=%r",
            target.namespace,
            target.function_name,
            target.version,
            instance.instance_id,
            returncode,
            instance.log_tail(),
        )
        if self._metrics is not None:
            self._metrics.failed(target, reason="exited")
        # It died on its own: out of the endpoints first, then sweep its group.
        self._forget(instance)
        self._changed(target)
        await instance.sweep()
        await self._release(instance.instance_id)
        self._capacity_freed()

    def _begin_stop(self, instance: local_process.LocalProcess, *, reason: str) -> None:
        was_ready = instance.endpoint is not None
        instance.stopping = True
        self._forget(instance)
        if was_ready:
            self._changed(instance.target)
        logger.info(
            "instance stopping namespace=%s function=%s version=%s instance=%s reason=%s",
            instance.target.namespace,
            instance.target.function_name,
            instance.target.version,
            instance.instance_id,
            reason,
        )
        self._draining.add(instance)
        self._track(self._stop(instance))

    async def _stop(self, instance: local_process.LocalProcess) -> None:
        try:
            await instance.stop()
        finally:
            self._draining.discard(instance)
        await self._release(instance.instance_id)
        self._capacity_freed()

    def _forget(self, instance: local_process.LocalProcess) -> None:
        instances = self._instances.get(instance.target, [])
        if instance in instances:
            instances.remove(instance)

    async def _admit(self) -> None:
        """Start what the budget admits of every target's missing instances; the rest
        stays deferred. Spares are left out of the plan: a start takes one, and those
        left that no longer fit beside the instances stop. Called with the scaling lock
        held."""
        running = {
            target: local_admission.Running(
                _environments(live),
                sum(p.provisioned for p in live),
                room=sum(p.capacity - p.environments for p in live),
            )
            for target, live in self._instances.items()
        }
        grants = self._admission.grants(
            self._usage(spares=False), running, now=self._clock(), backing_off=self._backing_off
        )
        for want, count in grants:
            live = self._instances.get(want.version.target, [])
            warm = sum(p.provisioned for p in live)
            for _ in range(count):
                if self._closed:
                    return
                provisioned = warm < want.provisioned
                if provisioned or not self._place(want.version.target):
                    await self._start(
                        want.version, concurrency=want.concurrency, provisioned=provisioned
                    )
                warm += 1
        over = self._usage().processes - self._admission.budget.max_processes
        if over > 0:
            await self._spares.shrink(math.ceil(over / local_capacity.SPARE_PROCESSES))
        self._admission.report(self._usage())
        self._maybe_refill()

    def _capacity_freed(self) -> None:
        """An instance became ready, failed or is gone: admit deferred starts now."""
        self._admission.report(self._usage())
        if self._closed or self._admitting or not self.starts_deferred():
            return
        self._admitting = True
        self._track(self._admit_deferred())

    async def _admit_deferred(self) -> None:
        async with self._scaling:
            # Cleared first: capacity that frees while this pass starts instances needs
            # a pass of its own.
            self._admitting = False
            if not self._closed:
                await self._admit()

    def _usage(self, *, spares: bool = True) -> local_capacity.Usage:
        """What the instances (draining ones too) take, and with ``spares`` the spares."""
        instances = [p for ps in self._instances.values() for p in ps]
        instances += self._draining
        processes_of = self._admission.budget.processes_of
        spare_processes = self._spares.count * local_capacity.SPARE_PROCESSES if spares else 0
        return local_capacity.Usage(
            memory_mb=sum(p.memory_mb * p.environments for p in instances),
            starting=sum(p.endpoint is None and not p.stopping for p in instances),
            processes=sum(processes_of(p.concurrency, p.environments) for p in instances)
            + spare_processes,
        )

    def _hosting(self, concurrency: int, *, provisioned: bool) -> int:
        """How many execution environments an agent started now may host: as many as
        fit ``environments_per_agent`` runtimes, whose environments then share one
        agent's event loop instead of waking an agent each (provisioned ones initialise
        ahead: one each)."""
        if provisioned:
            return 1
        return max(1, self._environments_per_agent // concurrency)

    def _place(self, target: Target) -> bool:
        """Give one more environment to an agent of ``target`` with room, the fullest
        first; ``False`` when none has room."""
        hosts = [p for p in self._instances.get(target, ()) if p.environments < p.capacity]
        if not hosts:
            return False
        host = max(hosts, key=lambda p: p.environments)
        self._resize(host, host.environments + 1)
        return True

    def _resize(self, host: local_process.LocalProcess, environments: int) -> None:
        host.resize(environments)
        logger.info(
            "instance environments namespace=%s function=%s version=%s instance=%s environments=%d",
            host.target.namespace,
            host.target.function_name,
            host.target.version,
            host.instance_id,
            environments,
        )
        if host.endpoint is not None:
            self._changed(host.target)

    def _backing_off(self, target: Target) -> bool:
        failures = self._failures.get(target)
        return failures is not None and self._clock() < failures.retry_at

    def _start_failed(self, target: Target, exc: errors.InstanceStartError) -> None:
        self._record_failure(target, exc)
        logger.error(
            "cannot start instance namespace=%s function=%s version=%s error=%s",
            target.namespace,
            target.function_name,
            target.version,
            exc,
        )

    def _record_failure(self, target: Target, exc: errors.InstanceStartError) -> None:
        previous = self._failures.get(target)
        consecutive = 1 if previous is None else previous.consecutive + 1
        delay = min(self._max_backoff, _FIRST_BACKOFF_SECONDS * 2 ** (consecutive - 1))
        self._failures[target] = _Failures(
            consecutive, str(exc), exc.retriable, self._clock() + delay
        )
        if self._metrics is not None:
            self._metrics.failed(target, reason=exc.reason)

    def _changed(self, target: Target) -> None:
        self._ready_endpoints.pop(target, None)
        if self._metrics is not None:
            self._metrics.ready_count(target, self.ready_instances(target))
        for listener in list(self._listeners):
            try:
                listener(target)
            except Exception:
                logger.exception("endpoint listener failed target=%s", target)

    def _track(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("instance task failed task=%s", task.get_name(), exc_info=exc)


def _environments(instances: Collection[local_process.LocalProcess]) -> int:
    return sum(p.environments for p in instances)


def _owner_only(root: Path) -> None:
    """Take group and other permissions off an unpacked package (the zip's modes gave
    them); the owner's stay as they are, read-only included."""
    for path in (root, *(Path(d, n) for d, ds, fs in os.walk(root) for n in (*ds, *fs))):
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode):
            path.chmod(stat.S_IMODE(mode) & ~0o077)


def _revision(version: FunctionVersion, concurrency: int) -> tuple[str, str, int]:
    """What an instance was started for: the version's revision, the package it runs and
    the concurrency it serves; an instance whose revision differs is replaced."""
    return (version.revision_id, version.running_package.sha256_hex, concurrency)
