"""Fixtures for the controller's integration tests: real agent processes, no fakes.

Code comes as a real zip put in a real ``LocalCodeStore``, which the real
``LocalProcessBackend`` unpacks. Every test gets a function name of its own, so the
``/proc`` scan that finds its processes (agents and runtimes carry
``AWS_LAMBDA_FUNCTION_NAME``) sees nobody else's.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
from controller_testkit import HANDLER, REGION, agent_pids, live_children, make_zip, parent_of

from controller.backends.local import LocalProcessBackend
from kubelambda.models import CodePackage, FunctionVersion
from kubelambda.ports.endpoints import Endpoint
from kubelambda.store import LocalCodeStore
from tests import checkout, factories
from tests.instance_http import instance_client

Until = Callable[[Callable[[], bool]], Awaitable[None]]
Invoke = Callable[[Endpoint, dict[str, object]], Coroutine[Any, Any, httpx.Response]]


@pytest.fixture
def function_name() -> str:
    return f"ctl-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def code_store(tmp_path: Path) -> LocalCodeStore:
    return LocalCodeStore(tmp_path / "code-store")


@pytest.fixture
async def handler_package(code_store: LocalCodeStore) -> CodePackage:
    """The test handler (``app.handler``), stored in ``code_store``."""
    return await code_store.put(make_zip({"app.py": HANDLER}))


@pytest.fixture
def make_version(
    function_name: str, handler_package: CodePackage
) -> Callable[..., FunctionVersion]:
    def make(**changes: object) -> FunctionVersion:
        defaults: dict[str, object] = {
            "code_sha256": handler_package.code_sha256,
            "code_size": handler_package.size,
            "revision_id": "rev-1",
            "last_modified": "2026-01-01T00:00:00.000+0000",
            "timeout": 5,
        }
        fields: dict[str, Any] = {"name": function_name, "version": "1"} | defaults | changes
        return factories.function_version(**fields)

    return make


NewBackend = Callable[..., LocalProcessBackend]


@pytest.fixture
async def new_backend(tmp_path: Path, code_store: LocalCodeStore) -> AsyncIterator[NewBackend]:
    """Builds a backend on ``code_store`` under ``<tmp>/home`` (keyword arguments override
    its options); every one built is closed at the end, even if the test closed it."""
    built: list[LocalProcessBackend] = []

    def build(**options: Any) -> LocalProcessBackend:
        defaults: dict[str, Any] = {
            "code": code_store,
            "region": REGION,
            "command": checkout.AGENT_COMMAND,
            "zygote_command": checkout.ZYGOTE_COMMAND,
        }
        local = LocalProcessBackend(tmp_path / "home", **(defaults | options))
        built.append(local)
        return local

    try:
        yield build
    finally:
        for local in built:
            await local.aclose()


@pytest.fixture
def backend(new_backend: NewBackend) -> LocalProcessBackend:
    return new_backend(ready_timeout=20.0, stop_grace_extra=2.0)


def function_pids(function_name: str) -> list[int]:
    """Live processes of one function, read from /proc: its runtimes (and their children)
    carry ``AWS_LAMBDA_FUNCTION_NAME`` from birth, and the agents are their parents.

    A zombie's environ reads empty, so processes that exited are not counted.
    """
    entry = f"AWS_LAMBDA_FUNCTION_NAME={function_name}".encode()
    found: set[int] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if entry in (proc / "environ").read_bytes().split(b"\0"):
                found.add(int(proc.name))
                found.add(parent_of(int(proc.name)))
        except OSError:
            continue
    found.discard(1)  # runtimes whose agent is gone belong to init now
    found.discard(os.getpid())
    return sorted(found)


@pytest.fixture
def agents_of_this_process() -> Callable[[], list[int]]:
    return agent_pids


@pytest.fixture
def children_of_this_process() -> Callable[[], list[int]]:
    """Live children of this test process: agents, and the zygote that forks others."""
    return lambda: live_children(os.getpid())


@pytest.fixture
def pids_of() -> Callable[[str], list[int]]:
    return function_pids


@pytest.fixture
def until() -> Until:
    async def wait(condition: Callable[[], bool], within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {within} s")
            await asyncio.sleep(0.01)

    return wait


@pytest.fixture
def invoke() -> Invoke:
    async def call(endpoint: Endpoint, event: dict[str, object]) -> httpx.Response:
        async with instance_client(endpoint, timeout=30.0) as client:
            return await client.post(
                "/invoke",
                json=event,
                headers={
                    "Kubelambda-Invoke-Token": endpoint.token,
                    "Kubelambda-Request-Id": str(uuid.uuid4()),
                    "Kubelambda-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:"
                    f"function:{endpoint.target.function_name}",
                },
            )

    return call
