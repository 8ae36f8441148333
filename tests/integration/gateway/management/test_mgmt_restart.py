"""A gateway restarted over an existing home finishes what the previous run left Pending."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mgmt_gateway import REGION, ROLE, make_zip, running_gateway, slow_zip

from kubelambda.models import DEFAULT_NAMESPACE, LATEST, FunctionSettings, LastUpdateStatus, State
from kubelambda.store import LocalCodeStore, SqliteStore
from tests import factories


async def leave_pending(home: Path) -> None:
    """What a crash between CreateFunction's answer and the settling of its package leaves
    behind: the zip stored, the function Pending."""
    package = await LocalCodeStore(home / "code").put(make_zip())
    async with SqliteStore.open(home, region=REGION) as store:
        latest = factories.function_version(
            "f",
            LATEST,
            role=ROLE,
            code_sha256=package.code_sha256,
            code_size=package.size,
            revision_id="",
            last_modified="",
            state=State.PENDING,
            last_update_status=LastUpdateStatus.IN_PROGRESS,
        )
        await store.create_function(latest, FunctionSettings(DEFAULT_NAMESPACE, "f"), publish=False)


def test_pending_function_becomes_active_after_a_restart(tmp_path):
    asyncio.run(leave_pending(tmp_path))
    with running_gateway(tmp_path) as gateway:
        client = gateway.client()
        client.get_waiter("function_active_v2").wait(
            FunctionName="f", WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
        )
        assert client.get_function(FunctionName="f")["Configuration"]["State"] == "Active"


def test_state_and_keys_survive_a_restart(tmp_path):
    with running_gateway(tmp_path) as gateway:
        client = gateway.client()
        client.create_function(
            FunctionName="f",
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip()},
        )
        keys = gateway.keys
    with running_gateway(tmp_path) as gateway:
        assert gateway.keys == keys
        names = [f["FunctionName"] for f in gateway.client().list_functions()["Functions"]]
        assert names == ["f"]


def test_a_shutdown_during_unpack_is_prompt_and_the_next_start_finishes_it(tmp_path):
    with running_gateway(tmp_path) as gateway:
        client = gateway.client()
        client.create_function(
            FunctionName="f",
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": slow_zip()},
        )
    with running_gateway(tmp_path) as gateway:
        client = gateway.client()
        client.get_waiter("function_active_v2").wait(
            FunctionName="f", WaiterConfig={"Delay": 0.1, "MaxAttempts": 600}
        )
        assert client.get_function(FunctionName="f")["Configuration"]["State"] == "Active"
