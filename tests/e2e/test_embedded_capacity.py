"""The embedded platform on a host budget that fits one 1,024 MB instance, driven by boto3.

A request that finds the host full waits in the activator and is served when capacity
frees; one that waits past ``KUBELAMBDA_ACTIVATOR_MAX_WAIT_SECONDS`` gets Lambda's 429;
an idle instance of another function is reclaimed so a new function can start; and the
metrics show the budget, the deferrals and the reclaims. The tests share one platform
and run in order; each leaves its function idle (the next one's start reclaims it).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from controller.backends import local_host
from tests.e2e.conftest import (
    Platform,
    create_function,
    log_text,
    metric_value,
    start_platform,
    stop_platform,
)
from tests.polling import eventually

MEMORY_MB = 1024
MAX_WAIT_SECONDS = 4.0
HANDLER = """
import os
import time


def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"pid": os.getpid()}
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    # One and a half instances' worth of this host's memory: room for exactly one.
    share = 1.5 * MEMORY_MB / local_host.read_host().memory_mb
    environ = {
        **os.environ,
        "KUBELAMBDA_CAPACITY_MEMORY_SHARE": f"{share:.6f}",
        "KUBELAMBDA_ACTIVATOR_MAX_WAIT_SECONDS": str(MAX_WAIT_SECONDS),
    }
    running = start_platform(tmp_path_factory.mktemp("capacity") / "home", environ=environ)
    yield running
    stop_platform(running.process)
    assert running.process.returncode == 0, log_text(running.home)


@pytest.fixture(scope="module")
def client(platform: Platform) -> Any:
    return platform.lambda_client()


def new_function(client: Any, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    create_function(client, name, HANDLER, MemorySize=MEMORY_MB)
    return name


def invoke(client: Any, name: str, **event: object) -> dict[str, Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    assert response["StatusCode"] == 200
    result: dict[str, Any] = json.loads(response["Payload"].read())
    return result


def in_background(client: Any, name: str, **event: object) -> threading.Thread:
    thread = threading.Thread(target=invoke, args=(client, name), kwargs=event)
    thread.start()
    return thread


def test_a_request_held_while_the_host_is_full_is_served_when_capacity_frees(
    platform: Platform, client: Any
) -> None:
    name = new_function(client, "held")
    first = invoke(client, name)
    busy = in_background(client, name, sleep=2)
    time.sleep(0.3)
    answers: list[dict[str, Any]] = []
    held = threading.Thread(target=lambda: answers.append(invoke(client, name)))
    started = time.monotonic()
    held.start()
    deferred = eventually(
        "a deferred start",
        lambda: metric_value(platform, "kubelambda_instance_starts_deferred", function=name),
        timeout=5,
    )
    held.join()
    busy.join()

    assert deferred == 1
    assert time.monotonic() - started > 1.0  # it waited for the busy instance
    assert answers == [first]  # served by the one instance there is room for
    assert (
        metric_value(platform, "kubelambda_capacity_limit", resource="memory_megabytes")
        >= MEMORY_MB
    )
    assert (
        metric_value(platform, "kubelambda_capacity_in_use", resource="memory_megabytes")
        == MEMORY_MB
    )


def test_a_request_gets_429_after_the_bound_wait_when_no_capacity_frees(client: Any) -> None:
    name = new_function(client, "throttled")
    invoke(client, name)
    busy = in_background(client, name, sleep=MAX_WAIT_SECONDS + 3)
    time.sleep(0.3)
    started = time.monotonic()
    try:
        with pytest.raises(ClientError) as caught:
            invoke(client, name)
        waited = time.monotonic() - started
    finally:
        busy.join()

    assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert caught.value.response["Reason"] == "ConcurrentInvocationLimitExceeded"
    assert MAX_WAIT_SECONDS - 0.5 < waited < MAX_WAIT_SECONDS + 2


def test_an_idle_instance_of_another_function_is_reclaimed_for_a_new_one(
    platform: Platform, client: Any
) -> None:
    idle = new_function(client, "idle")
    invoke(client, idle)
    time.sleep(1.5)  # a tick or more with nothing in flight: idle, as the autoscaler sees it
    newcomer = new_function(client, "newcomer")

    started = time.monotonic()
    invoke(client, newcomer)
    waited = time.monotonic() - started

    assert waited < MAX_WAIT_SECONDS
    assert metric_value(platform, "kubelambda_instances_reclaimed_total", function=idle) == 1
    assert metric_value(platform, "kubelambda_instances_ready", function=idle) == 0
    assert "reclaimed under pressure" in log_text(platform.home)
