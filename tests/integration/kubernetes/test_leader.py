"""Leader election on a real kube-apiserver's Lease (kubelambda.kubernetes.leader).

Each test runs replicas (LeaderElector + a lead() that records when it ran) against one
Lease in a fresh namespace, with a 3 s Lease renewed every second, and reads the Lease
with the sync client to check what the replicas wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kubernetes import client, config
from tcp_relay import relay_to

from kubelambda.kubernetes import connection
from kubelambda.kubernetes.leader import LeaderElector

pytestmark = pytest.mark.infra

LEASE = "kubelambda-controller"
LEASE_SECONDS = 3.0
RENEW_SECONDS = 1.0
WAIT_SECONDS = 15.0


@dataclass
class Replica:
    """One controller replica: its elector, and when its lead() started and ended."""

    identity: str
    elector: LeaderElector
    periods: list[tuple[float, float]] = field(default_factory=list)
    leading_since: float | None = None
    leading: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def lead(self) -> None:
        self.leading_since = time.monotonic()
        self.leading.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.leading.clear()
            self.periods.append((self.leading_since, time.monotonic()))
            self.leading_since = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run(self.lead))

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


@pytest.fixture(scope="module")
def leases(kubeconfig: Path) -> Iterator[client.CoordinationV1Api]:
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        yield client.CoordinationV1Api(api)


@pytest.fixture
def namespace(kubeconfig: Path) -> Iterator[str]:
    name = f"lease-{uuid.uuid4().hex[:8]}"
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        yield name
        core.delete_namespace(name)


@pytest.fixture
async def replicas(
    kubeconfig: Path, namespace: str
) -> AsyncIterator[Callable[..., Awaitable[Replica]]]:
    """Builds started replicas, each with its own client; ``api_host`` routes one through
    a relay. Whatever still runs is stopped at the end."""
    started: list[Replica] = []
    clients = contextlib.AsyncExitStack()

    async def start(identity: str, *, api_host: str | None = None) -> Replica:
        # connected(): closed only once its TLS connections really are (no leaked socket).
        api = await clients.enter_async_context(connection.connected(str(kubeconfig)))
        if api_host is not None:
            api.configuration.host = api_host
        replica = Replica(
            identity,
            LeaderElector(
                api,
                namespace=namespace,
                name=LEASE,
                identity=identity,
                lease_seconds=LEASE_SECONDS,
                renew_seconds=RENEW_SECONDS,
            ),
        )
        replica.start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        if replica.task is not None and not replica.task.done():
            await replica.stop()
    await clients.aclose()


async def next_leader(*candidates: Replica) -> Replica:
    """The first of ``candidates`` to start lead(), failing after WAIT_SECONDS."""
    waits = [asyncio.ensure_future(replica.leading.wait()) for replica in candidates]
    try:
        done, _ = await asyncio.wait(
            waits, timeout=WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for wait in waits:
            wait.cancel()
    assert done, f"none of {[r.identity for r in candidates]} led within {WAIT_SECONDS:.0f}s"
    leader = the_leader(*candidates)
    assert leader is not None
    return leader


def the_leader(*candidates: Replica) -> Replica | None:
    leading = [replica for replica in candidates if replica.elector.is_leader]
    assert len(leading) <= 1, f"{[r.identity for r in leading]} lead at once"
    return leading[0] if leading else None


async def read_lease(leases: client.CoordinationV1Api, namespace: str) -> client.V1LeaseSpec:
    lease = await asyncio.to_thread(leases.read_namespaced_lease, LEASE, namespace)
    spec: client.V1LeaseSpec = lease.spec
    return spec


async def test_of_two_electors_exactly_one_leads(
    replicas: Callable[..., Awaitable[Replica]],
    leases: client.CoordinationV1Api,
    namespace: str,
) -> None:
    a, b = await replicas("a"), await replicas("b")
    leader = await next_leader(a, b)

    # Several renewal periods later the same one still leads, and it alone ever ran lead().
    await asyncio.sleep(4 * RENEW_SECONDS)
    assert the_leader(a, b) is leader
    standby = b if leader is a else a
    assert standby.leading_since is None and not standby.periods
    spec = await read_lease(leases, namespace)
    assert spec.holder_identity == leader.identity
    assert spec.lease_duration_seconds == math.ceil(LEASE_SECONDS)
    assert spec.lease_transitions == 0  # created by the leader: no change of holder yet
    assert spec.renew_time > spec.acquire_time  # renewed since


async def test_cancelling_the_leader_releases_the_lease_to_the_other_at_once(
    replicas: Callable[..., Awaitable[Replica]],
    leases: client.CoordinationV1Api,
    namespace: str,
) -> None:
    a, b = await replicas("a"), await replicas("b")
    leader = await next_leader(a, b)
    standby = b if leader is a else a
    before = await read_lease(leases, namespace)

    await leader.stop()
    stopped_at = time.monotonic()
    assert not leader.elector.is_leader
    assert leader.leading_since is None and len(leader.periods) == 1  # lead() was cancelled

    # Released, not left to expire: the standby takes over at its next attempt.
    assert await next_leader(standby) is standby
    assert standby.leading_since is not None
    assert standby.leading_since - stopped_at < 2 * RENEW_SECONDS
    after = await read_lease(leases, namespace)
    assert after.holder_identity == standby.identity
    assert after.lease_transitions == before.lease_transitions + 1
    assert after.acquire_time > before.renew_time


async def test_a_leader_cut_off_from_the_apiserver_steps_down_and_is_replaced_after_expiry(
    replicas: Callable[..., Awaitable[Replica]],
    leases: client.CoordinationV1Api,
    namespace: str,
    kubeconfig: Path,
) -> None:
    apiserver = urlsplit(await _apiserver_url(kubeconfig))
    assert apiserver.hostname is not None and apiserver.port is not None
    async with relay_to(apiserver.hostname, apiserver.port) as relay:
        cut_off = await replicas("cut-off", api_host=f"https://{apiserver.hostname}:{relay.port}")
        await next_leader(cut_off)
        standby = await replicas("standby")
        await asyncio.sleep(2 * RENEW_SECONDS)
        assert the_leader(cut_off, standby) is cut_off

        relay.cut()
        last_renewal = await read_lease(leases, namespace)
        assert await next_leader(standby) is standby
        # The cut-off leader stopped lead() before the standby started its own...
        assert the_leader(cut_off, standby) is standby
        [(_, stepped_down_at)] = cut_off.periods
        assert standby.leading_since is not None and stepped_down_at < standby.leading_since
        # ...and the standby waited for the Lease the leader last wrote to expire.
        taken = await read_lease(leases, namespace)
        expiry = last_renewal.renew_time + timedelta(seconds=last_renewal.lease_duration_seconds)
        assert taken.holder_identity == "standby"
        assert taken.acquire_time > expiry
        assert taken.lease_transitions == last_renewal.lease_transitions + 1

        # Back in touch, the old leader finds the Lease taken and stays a standby.
        relay.restore()
        await asyncio.sleep(3 * RENEW_SECONDS)
        assert the_leader(cut_off, standby) is standby
        assert cut_off.leading_since is None


async def test_a_lead_that_ends_by_itself_ends_the_run_and_releases_the_lease(
    kubeconfig: Path, leases: client.CoordinationV1Api, namespace: str
) -> None:
    ran = asyncio.Event()

    async def lead() -> None:
        ran.set()

    async with connection.connected(str(kubeconfig)) as api:
        elector = LeaderElector(
            api,
            namespace=namespace,
            name=LEASE,
            identity="once",
            lease_seconds=LEASE_SECONDS,
            renew_seconds=RENEW_SECONDS,
        )
        await asyncio.wait_for(elector.run(lead), WAIT_SECONDS)
    assert ran.is_set() and not elector.is_leader
    spec = await read_lease(leases, namespace)
    assert spec.holder_identity in ("", None)  # released: free for the next replica at once


async def _apiserver_url(kubeconfig: Path) -> str:
    async with connection.connected(str(kubeconfig)) as api:
        host: str = api.configuration.host
        return host
