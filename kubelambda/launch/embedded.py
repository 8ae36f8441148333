"""The embedded platform: gateway, controller and local instances in one process.

Called by ``kubelambda up``. Picks the embedded adapter for each port (SQLite store,
code on the local disk, local-process instances, the autoscaler itself as the
gateway's scale signals, the event queue in SQLite or on Kafka), hands them to the
controller and to ``front`` (invoke path, dispatcher, gateway, served by uvicorn), and on
exit stops everything it started, instances included, in reverse order. Before any of
that it makes the home owner-only, locks it (one platform per home, see ``home``) and
reaps the instances a killed earlier run left behind. The local backend gets the host's
budget for instances (memory, starts at once, live processes) from the settings' shares.
Run as root, it has every function's instances run as a user of that function's own
(``controller.backends.local_users``) and offers only the runtimes such users can start.
"""

from __future__ import annotations

import contextlib
import logging

from prometheus_client import CollectorRegistry

from controller.backends import local_capacity, local_host, local_users
from controller.backends.local import LocalProcessBackend
from controller.metrics import ControllerMetrics
from kubelambda import credentials, runtimes
from kubelambda.launch import front, home, queues, serving
from kubelambda.launch.controller import start_controller
from kubelambda.launch.settings import PlatformSettings
from kubelambda.store.code import LocalCodeStore
from kubelambda.store.sqlite import SqliteStore

__all__ = ["run"]

log = logging.getLogger(__name__)

# The only gateway of an embedded platform, as its scale signals name it.
_REPORTER = "embedded"


async def run(settings: PlatformSettings, *, deploy_example: bool = False) -> None:
    """Serve until SIGINT/SIGTERM, then stop every instance and close the store."""
    home.make_private(settings.home)
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(home.lock(settings.home, url_file=settings.url_file))
        # An earlier run that was killed outright may have left its instances behind,
        # and its URL (holding the lock, we know that run is gone).
        await LocalProcessBackend.reap_leftovers(settings.home)
        settings.url_file.unlink(missing_ok=True)
        keys = credentials.load_or_create(settings.home)
        registry = CollectorRegistry()
        listener = stack.enter_context(
            contextlib.closing(serving.bind(settings.host, settings.port))
        )
        stack.enter_context(serving.signals_end_serving_only())
        store = await stack.enter_async_context(
            SqliteStore.open(settings.home, region=settings.region)
        )
        queue = (
            await stack.enter_async_context(queues.open_queue(settings, home_locked=True))
        ).queue
        code = LocalCodeStore(settings.home / "code")
        controller_metrics = ControllerMetrics(registry)
        users = local_users.for_platform(settings.instance_uid_base)
        host = local_host.read_host()
        budget = local_capacity.Budget.for_host(
            host,
            local_capacity.Limits(
                memory_share=settings.capacity_memory_share,
                starting_at_once=settings.capacity_starting_at_once,
                processes_per_core=settings.capacity_processes_per_core,
            ),
        )
        log.info(
            "instance budget memory_mb=%d of %d starting=%d processes=%d cores=%d",
            budget.memory_mb,
            host.memory_mb,
            budget.max_starting,
            budget.max_processes,
            host.cores,
        )
        backend = LocalProcessBackend(
            settings.home,
            code=code,
            region=settings.region,
            metrics=controller_metrics,
            users=users,
            budget=budget,
            environments_per_agent=settings.environments_per_agent,
        )
        stack.push_async_callback(backend.aclose)
        offered = runtimes.available_runtimes(usable=None if users is None else users.can_run)
        log.info(
            "function instances run as %s runtimes=%s",
            "users of their own" if users is not None else "this platform's user",
            ",".join(offered),
        )
        stack.callback(backend.follow(store))
        backend.start_spares()
        autoscaler = await start_controller(
            stack,
            store=store,
            code=code,
            backend=backend,
            metrics=controller_metrics,
            package_grace_seconds=settings.package_grace_seconds,
        )
        await front.serve_front(
            stack,
            settings,
            listener=listener,
            store=store,
            code=code,
            queue=queue,
            endpoints=backend,
            signals=autoscaler,
            reporter=_REPORTER,
            registry=registry,
            keys=keys,
            runtimes=offered,
            deploy_example=deploy_example,
            url_file=settings.url_file,
        )
