"""Scale signals from a real sender to the controller's real HTTP app over loopback: pokes
arrive at once, peaks are not lost between batches, nothing is lost while the controller
is down or standing by, and a wrong token is refused."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from kubelambda.launch import serving
from kubelambda.launch.ops_app import ops_app
from kubelambda.models import Target
from kubelambda.signals import wire
from kubelambda.signals.receiver import SignalReceiver
from kubelambda.signals.sender import SignalSender
from tests.recorded_signals import RecordedSignals

KEY = bytes(range(32))
HELLO = Target("team-a", "hello", "$LATEST")


@contextlib.asynccontextmanager
async def served(app: ASGIApp, listener: socket.socket) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    host, port = listener.getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


def controller_app(receiver: Callable[[], SignalReceiver | None]) -> ASGIApp:
    return ops_app(
        registry=CollectorRegistry(),
        ready=lambda: receiver() is not None,
        signals=receiver,
        instance_key=KEY,
    )


@contextlib.asynccontextmanager
async def sender_to(url: str, *, key: bytes = KEY, **timing: float) -> AsyncIterator[SignalSender]:
    sender = SignalSender(url, key=key, reporter="gateway-test", **timing)
    await sender.start()
    try:
        yield sender
    finally:
        await sender.aclose()


async def eventually(check: Callable[[], bool], *, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_a_poke_and_the_peak_between_batches_reach_the_autoscaler() -> None:
    recorded = RecordedSignals()
    receiver = SignalReceiver(recorded)
    listener = serving.bind("127.0.0.1", 0)
    async with (
        served(controller_app(lambda: receiver), listener) as url,
        sender_to(url) as sender,
    ):
        sender.report("gateway-test", HELLO, in_flight=0, waiting=1)
        sender.poke(HELLO)
        await eventually(lambda: recorded.pokes == [HELLO])
        # Three start and end before the next batch: the autoscaler still sees three.
        for in_flight in (1, 2, 3, 2, 1, 0):
            sender.report("gateway-test", HELLO, in_flight=in_flight, waiting=0)
        await eventually(lambda: ("gateway-test", HELLO, 3, 0) in recorded.reports)
        await eventually(lambda: recorded.reports[-1] == ("gateway-test", HELLO, 0, 0))


async def test_a_busy_target_is_repeated_every_heartbeat() -> None:
    recorded = RecordedSignals()
    receiver = SignalReceiver(recorded)
    listener = serving.bind("127.0.0.1", 0)
    async with (
        served(controller_app(lambda: receiver), listener) as url,
        sender_to(url, heartbeat_seconds=0.2) as sender,
    ):
        sender.report("gateway-test", HELLO, in_flight=2, waiting=0)
        await eventually(lambda: len(recorded.reports) >= 6)
    assert set(recorded.reports) == {("gateway-test", HELLO, 2, 0)}


async def test_signals_wait_for_a_controller_that_is_down_or_standing_by() -> None:
    recorded = RecordedSignals()
    leading: list[SignalReceiver] = []
    listener = serving.bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    async with sender_to(url, retry_seconds=0.05) as sender:
        sender.report("gateway-test", HELLO, in_flight=0, waiting=3)
        sender.poke(HELLO)
        await asyncio.sleep(0.3)  # nothing listens yet (bound, not accepting): kept
        async with served(controller_app(lambda: leading[0] if leading else None), listener):
            await asyncio.sleep(0.3)  # served, but this replica does not lead: 503, kept
            assert recorded.pokes == []
            leading.append(SignalReceiver(recorded))
            await eventually(lambda: recorded.pokes == [HELLO])
    assert recorded.reports[-1] == ("gateway-test", HELLO, 0, 3)


async def test_a_wrong_token_is_refused() -> None:
    recorded = RecordedSignals()
    receiver = SignalReceiver(recorded)
    listener = serving.bind("127.0.0.1", 0)
    async with served(controller_app(lambda: receiver), listener) as url:
        async with sender_to(url, key=b"\xff" * 32, retry_seconds=0.05) as sender:
            sender.poke(HELLO)
            await asyncio.sleep(0.3)
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{url}/kubelambda/signals", content=b"{}")
    assert recorded.pokes == []
    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "AccessDeniedException"


@pytest.mark.parametrize("leads", [True, False])
async def test_the_probes_say_whether_this_replica_leads(leads: bool) -> None:
    receiver = SignalReceiver(RecordedSignals())
    listener = serving.bind("127.0.0.1", 0)
    app = controller_app(lambda: receiver if leads else None)
    async with served(app, listener) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == (200 if leads else 503)
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")


async def test_an_oversized_batch_is_refused_unread() -> None:
    recorded = RecordedSignals()
    listener = serving.bind("127.0.0.1", 0)
    async with (
        served(controller_app(lambda: SignalReceiver(recorded)), listener) as url,
        httpx.AsyncClient() as client,
    ):
        answer = await client.post(
            f"{url}/kubelambda/signals",
            content=b"x" * (5 * 1024 * 1024),
            headers={"Authorization": f"Bearer {wire.token(KEY)}"},
        )
        malformed = await client.post(
            f"{url}/kubelambda/signals",
            content=b'{"reporter": 1}',
            headers={"Authorization": f"Bearer {wire.token(KEY)}"},
        )
    assert answer.status_code == 413
    assert malformed.status_code == 400
    assert recorded.reports == [] and recorded.pokes == []
