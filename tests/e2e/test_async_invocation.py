"""Asynchronous (Event) invocation end to end: `kubelambda up` with its event queue in
SQLite and on the real Kafka broker, driven with boto3, the AWS CLI and `kubelambda dlq`.

Handlers append one JSON line per invocation to a file under the test's directory (the
embedded platform runs them as local processes), so every test counts what ran by
request id. Retry delays are shortened to 1 s and 2 s (`KUBELAMBDA_ASYNC_RETRY_DELAYS`), and
a throttled event is first tried again after 21 s (`KUBELAMBDA_ASYNC_THROTTLE_BACKOFF_SECONDS`)
rather than 1 s, so that one reaches its maximum age sooner (see that test).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from botocore.exceptions import ClientError

from tests.e2e.conftest import Platform, log_text, make_zip, start_platform, stop_platform
from tests.integration.kafka.kafka_helpers import PrivateBroker

ROLE = "arn:aws:iam::000000000000:role/kubelambda"
KUBELAMBDA = str(Path(sys.executable).with_name("kubelambda"))

RECORDING_HANDLER = """
import json, os, time

def handler(event, context):
    line = {"id": context.aws_request_id, "function": context.function_name,
            "event": event, "at": time.time()}
    with open(os.path.join(os.environ["OUT_DIR"], context.function_name + ".jsonl"), "a") as out:
        out.write(json.dumps(line) + "\\n")
    if isinstance(event, dict) and event.get("crash"):
        os._exit(3)
    if isinstance(event, dict) and event.get("fail") and not os.environ.get("FIXED"):
        raise ValueError("boom " + str(event.get("n")))
    return {"ok": event.get("n") if isinstance(event, dict) else None}
"""

QUEUES = ["sqlite", "kafka"]
# With the shortest maximum age Lambda allows (60 s), a throttled event accepted at t=0
# is postponed to t=21, throttled again, and dropped then: its next try (t=21+42) would
# come after its maximum age. With the default 1 s the tries at t=1, 3, 7, 15 and 31
# come first, and the drop at t=31.
THROTTLE_BACKOFF_SECONDS = 21


def queue_environment(queue: str) -> dict[str, str]:
    if queue == "sqlite":
        return {}
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        pytest.fail("KAFKA_BOOTSTRAP is not set: start the test infrastructure (make test)")
    return {
        "KUBELAMBDA_KAFKA_BOOTSTRAP": bootstrap,
        # Each platform of this run gets topics and a consumer group of its own.
        "KUBELAMBDA_KAFKA_TOPIC_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}",
    }


@pytest.fixture(scope="module", params=QUEUES)
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp(f"async-{request.param}") / "home"
    running = start_platform(
        home,
        environ={
            **os.environ,
            **queue_environment(request.param),
            "KUBELAMBDA_ASYNC_RETRY_DELAYS": "1,2",
            "KUBELAMBDA_ASYNC_THROTTLE_BACKOFF_SECONDS": str(THROTTLE_BACKOFF_SECONDS),
        },
    )
    yield running
    stop_platform(running.process)
    assert running.process.returncode == 0, log_text(running.home)


@dataclass(frozen=True)
class AgingEvent:
    """An event for a function that may run nothing (reserved concurrency 0)."""

    function: str
    request_id: str
    out_dir: Path


@pytest.fixture(scope="module")
def aging(platform: Platform) -> Iterator[AgingEvent]:
    """Sent as soon as the module's platform is up, so that the ~21 s it is kept before it
    is too old pass while the module's other tests run: the test that checks its end
    comes last of them (``client`` asks for this fixture, so the first test starts it)."""
    client = platform.lambda_client()
    out_dir = Path(tempfile.mkdtemp(prefix="kubelambda-aging-"))
    out_dir.chmod(0o777)  # as writable_dir: the function would write here, were it run
    name = f"old-{uuid.uuid4().hex[:8]}"
    create(client, name, out_dir)
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    client.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=60)
    yield AgingEvent(name, send_event(client, name, {"n": 9}), out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def client(platform: Platform, aging: AgingEvent) -> Any:
    return platform.lambda_client()


@pytest.fixture
def out_dir(writable_dir: Callable[[str], Path]) -> Path:
    return writable_dir("out")


def create(client: Any, name: str, out_dir: Path, **extra: Any) -> None:
    client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": RECORDING_HANDLER})},
        Environment={"Variables": {"OUT_DIR": str(out_dir)}},
        Timeout=5,
        **extra,
    )
    client.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )


def calls(out_dir: Path, name: str) -> list[dict[str, Any]]:
    path = out_dir / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(
    condition: Callable[[], bool], *, within: float, what: str, platform: Platform | None = None
) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            tail = log_text(platform.home)[-4000:] if platform else ""
            raise AssertionError(f"not reached within {within:.0f}s: {what}\n{tail}")
        time.sleep(0.1)


def send_event(client: Any, name: str, payload: dict[str, Any], **extra: Any) -> str:
    response = client.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps(payload).encode(), **extra
    )
    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    return str(response["ResponseMetadata"]["RequestId"])


def dlq(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBELAMBDA, "dlq", *args],
        env={**os.environ, **platform_environment(platform)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def platform_environment(platform: Platform) -> dict[str, str]:
    """What `kubelambda dlq` needs to find the platform's state and queue."""
    env = {"KUBELAMBDA_HOME": str(platform.home)}
    for name in ("KUBELAMBDA_KAFKA_BOOTSTRAP", "KUBELAMBDA_KAFKA_TOPIC_PREFIX"):
        if name in platform.launch_env:
            env[name] = platform.launch_env[name]
    return env


def test_an_event_is_202_and_runs_under_the_same_request_id(
    platform: Platform, client: Any, out_dir: Path
) -> None:
    name = f"ev-{uuid.uuid4().hex[:8]}"
    create(client, name, out_dir)

    request_id = send_event(client, name, {"n": 1})

    wait_for(
        lambda: len(calls(out_dir, name)) == 1, within=30, what="the event ran", platform=platform
    )
    (call,) = calls(out_dir, name)
    assert call["id"] == request_id
    assert call["event"] == {"n": 1}


def test_the_aws_cli_sends_an_event(
    platform: Platform, client: Any, out_dir: Path, tmp_path: Path
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    create(client, name, out_dir)
    aws = str(Path(sys.executable).with_name("aws"))

    result = subprocess.run(
        [
            aws,
            "lambda",
            "invoke",
            "--function-name",
            name,
            "--invocation-type",
            "Event",
            "--payload",
            '{"n": 7}',
            str(tmp_path / "out.json"),
        ],
        env={**os.environ, **platform.env},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["StatusCode"] == 202
    wait_for(
        lambda: len(calls(out_dir, name)) == 1, within=30, what="the event ran", platform=platform
    )


def test_an_oversized_event_is_413_and_never_runs(client: Any, out_dir: Path) -> None:
    name = f"big-{uuid.uuid4().hex[:8]}"
    create(client, name, out_dir)

    with pytest.raises(ClientError) as caught:
        client.invoke(
            FunctionName=name,
            InvocationType="Event",
            Payload=json.dumps({"x": "y" * 1_048_576}).encode(),
        )

    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert caught.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    time.sleep(1)
    assert calls(out_dir, name) == []


def test_failures_are_retried_with_the_set_spacing_then_dead_lettered_and_sent_on(
    platform: Platform, client: Any, out_dir: Path
) -> None:
    name = f"fail-{uuid.uuid4().hex[:8]}"
    on_fail = f"{name}-onfail"
    create(client, name, out_dir)
    create(client, on_fail, out_dir)
    on_fail_arn = arn_of(client, on_fail)
    client.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": on_fail_arn}},
    )

    request_id = send_event(client, name, {"fail": True, "n": 3})

    wait_for(
        lambda: len(calls(out_dir, on_fail)) == 1,
        within=60,
        what="OnFailure ran",
        platform=platform,
    )
    attempts = calls(out_dir, name)
    assert [a["id"] for a in attempts] == [request_id] * 3
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    assert 0.9 <= gaps[0] < 3.0 and 1.9 <= gaps[1] < 4.5, gaps
    record = calls(out_dir, on_fail)[0]["event"]
    assert set(record) == {
        "version",
        "timestamp",
        "requestContext",
        "requestPayload",
        "responseContext",
        "responsePayload",
    }
    assert record["version"] == "1.0" and record["timestamp"].endswith("Z")
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"{arn_of(client, name)}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == {"fail": True, "n": 3}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorMessage"] == "boom 3"
    listed = dlq(platform, "list", name, "--json")
    assert listed.returncode == 0, listed.stderr
    (letter,) = json.loads(listed.stdout)
    assert (letter["requestId"], letter["condition"], letter["attempts"]) == (
        request_id,
        "RetriesExhausted",
        3,
    )
    assert letter["errorMessage"] == "boom 3"
    assert json.loads(letter["payload"]) == {"fail": True, "n": 3}


def test_zero_retries_runs_once_and_a_success_goes_to_on_success(
    platform: Platform, client: Any, out_dir: Path
) -> None:
    name = f"once-{uuid.uuid4().hex[:8]}"
    on_success = f"{name}-ok"
    create(client, name, out_dir)
    create(client, on_success, out_dir)
    ok_arn = arn_of(client, on_success)
    client.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": ok_arn}},
    )

    failing = send_event(client, name, {"fail": True, "n": 1})
    succeeding = send_event(client, name, {"n": 2})

    wait_for(
        lambda: len(calls(out_dir, on_success)) == 1,
        within=30,
        what="OnSuccess ran",
        platform=platform,
    )
    wait_for(
        lambda: dlq_ids(platform, name) == [failing],
        within=30,
        what="the dead letter",
        platform=platform,
    )
    assert sorted(c["id"] for c in calls(out_dir, name)) == sorted([failing, succeeding])
    record = calls(out_dir, on_success)[0]["event"]
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["requestId"] == succeeding
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"ok": 2}


def arn_of(client: Any, name: str) -> str:
    return str(client.get_function(FunctionName=name)["Configuration"]["FunctionArn"])


def dlq_ids(platform: Platform, name: str) -> list[str]:
    listed = dlq(platform, "list", name, "--json")
    assert listed.returncode == 0, listed.stderr
    return [letter["requestId"] for letter in json.loads(listed.stdout)]


def test_redrive_sends_dead_letters_back_through_the_queue(
    platform: Platform, client: Any, out_dir: Path
) -> None:
    name = f"redrive-{uuid.uuid4().hex[:8]}"
    create(client, name, out_dir)
    client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    request_id = send_event(client, name, {"fail": True, "n": 5})
    wait_for(
        lambda: dlq_ids(platform, name) == [request_id],
        within=30,
        what="the dead letter",
        platform=platform,
    )
    client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"OUT_DIR": str(out_dir), "FIXED": "1"}}
    )

    redriven = dlq(platform, "redrive", name)

    assert redriven.returncode == 0, redriven.stderr
    assert "1 dead letter(s) redriven" in redriven.stdout
    assert dlq_ids(platform, name) == []
    wait_for(
        lambda: len(calls(out_dir, name)) == 2,
        within=30,
        what="the redriven event ran",
        platform=platform,
    )
    assert [c["id"] for c in calls(out_dir, name)] == [request_id, request_id]


def test_a_function_that_crashes_its_runtime_is_retried_then_dead_lettered(
    platform: Platform, client: Any, out_dir: Path
) -> None:
    name = f"crash-{uuid.uuid4().hex[:8]}"
    create(client, name, out_dir)
    client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)

    request_id = send_event(client, name, {"crash": True})

    wait_for(
        lambda: dlq_ids(platform, name) == [request_id],
        within=60,
        what="the dead letter",
        platform=platform,
    )
    assert [c["id"] for c in calls(out_dir, name)] == [request_id, request_id]
    (letter,) = json.loads(dlq(platform, "list", name, "--json").stdout)
    assert (letter["condition"], letter["attempts"]) == ("RetriesExhausted", 2)
    # The next event gets a fresh runtime.
    second = send_event(client, name, {"n": 1})
    wait_for(lambda: second in {c["id"] for c in calls(out_dir, name)}, within=30, what="next")


def test_an_event_throttled_past_its_maximum_age_is_dropped_as_too_old(
    platform: Platform, aging: AgingEvent
) -> None:
    wait_for(
        lambda: dlq_ids(platform, aging.function) == [aging.request_id],
        within=100,
        what="EventAgeExceeded",
        platform=platform,
    )
    (letter,) = json.loads(dlq(platform, "list", aging.function, "--json").stdout)
    assert letter["condition"] == "EventAgeExceeded"
    assert letter["attempts"] == 0
    assert calls(aging.out_dir, aging.function) == []
    # Postponed once, as the arithmetic above THROTTLE_BACKOFF_SECONDS says, then dropped.
    retried = [
        line
        for line in log_text(platform.home).splitlines()
        if f"event retried request_id={aging.request_id} " in line
    ]
    assert len(retried) == 1 and "failure=throttled" in retried[0], retried


def test_dead_letters_are_on_a_kafka_topic_a_plain_consumer_reads(
    tmp_path_factory: pytest.TempPathFactory, out_dir: Path
) -> None:
    environ = {**os.environ, **queue_environment("kafka")}
    running = start_platform(tmp_path_factory.mktemp("dlq-topic") / "home", environ=environ)
    try:
        client = running.lambda_client()
        name = f"topic-{uuid.uuid4().hex[:8]}"
        create(client, name, out_dir)
        client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
        configuration = client.get_function_configuration(FunctionName=name)
        topic = configuration["DeadLetterConfig"]["TargetArn"].rsplit("/", 1)[1]

        request_id = send_event(client, name, {"fail": True, "n": 11})

        wait_for(lambda: dlq_ids(running, name) == [request_id], within=30, what="the letter")
    finally:
        stop_platform(running.process)
    (message,) = asyncio.run(read_topic(environ["KUBELAMBDA_KAFKA_BOOTSTRAP"], topic))
    headers = {key: value.decode() for key, value in message.headers}
    assert topic == f"kubelambda-dlq.{name}"
    assert json.loads(message.value) == {"fail": True, "n": 11}
    assert headers["RequestID"] == request_id
    assert headers["ErrorCode"] == "200"
    assert headers["ErrorMessage"] == "boom 11"
    assert headers["Condition"] == "RetriesExhausted"


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic``, with a plain consumer of no group."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
        return [record for records in batches.values() for record in records]
    finally:
        await consumer.stop()


@pytest.mark.parametrize("queue", QUEUES)
def test_events_accepted_before_a_kill_9_all_run_after_the_restart(
    queue: str, tmp_path_factory: pytest.TempPathFactory, out_dir: Path
) -> None:
    """kill -9 of the whole platform right after 1,000 events were accepted: every
    accepted event runs at least once after the restart (counted by request id)."""
    home = tmp_path_factory.mktemp(f"crash-{queue}") / "home"
    environ = {**os.environ, **queue_environment(queue)}
    first = start_platform(home, environ=environ)
    try:
        client = first.lambda_client()
        name = "crash"
        create(client, name, out_dir)
        accepted = accept_events(first, name, count=1000)
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait()
    finally:
        if first.process.poll() is None:
            stop_platform(first.process)
    second = start_platform(home, environ=environ)
    try:
        wait_for(
            lambda: accepted <= {c["id"] for c in calls(out_dir, name)},
            within=240,
            what="every accepted event ran after the restart",
            platform=second,
        )
    finally:
        stop_platform(second.process)
    ran = [c["id"] for c in calls(out_dir, name)]
    lost = accepted - set(ran)
    duplicates = len(ran) - len(set(ran))
    print(
        f"crash test queue={queue} accepted={len(accepted)} lost={len(lost)} "
        f"duplicates={duplicates}"
    )
    assert lost == set()


def accept_events(platform: Platform, name: str, *, count: int) -> set[str]:
    """Send ``count`` events over a few keep-alive connections; the request ids of the
    202s (only those count as accepted)."""
    clients = [platform.lambda_client() for _ in range(8)]

    def send(i: int) -> str | None:
        try:
            return send_event(clients[i % len(clients)], name, {"n": i})
        except ClientError:
            return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(send, range(count)))
    accepted = {i for i in ids if i is not None}
    assert len(accepted) == count
    return accepted


def test_a_kafka_outage_under_load_refuses_events_and_loses_none(
    tmp_path_factory: pytest.TempPathFactory, out_dir: Path
) -> None:
    """The platform's broker stops while events keep coming, until every caller has been
    refused: invokes during the outage get errors, never 202s, the platform takes events
    again once the broker is back, and every event that got a 202 runs."""
    queue_environment("kafka")  # fails clearly when the test infrastructure is absent
    broker = PrivateBroker(tmp_path_factory.mktemp("outage-kafka"))
    try:
        bootstrap = broker.start()
        environ = {
            **os.environ,
            "KUBELAMBDA_KAFKA_BOOTSTRAP": bootstrap,
            "KUBELAMBDA_KAFKA_TOPIC_PREFIX": f"outage-{uuid.uuid4().hex[:8]}",
        }
        running = start_platform(tmp_path_factory.mktemp("outage") / "home", environ=environ)
        try:
            client = running.lambda_client()
            create(client, "steady", out_dir)
            accepted, refused = load_across_an_outage(running, broker, "steady")
            wait_for(
                lambda: accepted <= {c["id"] for c in calls(out_dir, "steady")},
                within=180,
                what="every accepted event ran after the outage",
                platform=running,
            )
        finally:
            stop_platform(running.process)
    finally:
        broker.remove()
    ran = [c["id"] for c in calls(out_dir, "steady")]
    print(
        f"outage test accepted={len(accepted)} refused={refused} "
        f"lost={len(accepted - set(ran))} duplicates={len(ran) - len(set(ran))}"
    )
    assert refused > 0
    assert accepted - set(ran) == set()


# Accepted events the load waits for before the outage and after it: enough that the
# broker was really taking the load before, and really is again after.
ACCEPTED_PER_PHASE = 40
CALLERS = 4


def load_across_an_outage(
    platform: Platform, broker: PrivateBroker, name: str
) -> tuple[set[str], int]:
    """Events from 4 callers: the broker stops once ``ACCEPTED_PER_PHASE`` were accepted,
    starts again once every caller was refused at least once, and the load ends once as
    many more were accepted after the restart. The request ids that got a 202, and how
    many calls got an error instead. Each phase ends on what it is there to show, not
    after a fixed time (the broker's restart alone takes seconds, with callers refused)."""
    accepted: set[str] = set()
    refused_by: dict[int, int] = dict.fromkeys(range(CALLERS), 0)
    lock = threading.Lock()
    stop = threading.Event()

    def caller(index: int) -> None:
        client = platform.lambda_client()
        n = 0
        while not stop.is_set():
            n += 1
            try:
                request_id = send_event(client, name, {"caller": index, "n": n})
            except ClientError as exc:
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] >= 429
                with lock:
                    refused_by[index] += 1
                continue
            with lock:
                accepted.add(request_id)
            time.sleep(0.02)

    def accepted_count() -> int:
        with lock:
            return len(accepted)

    def phase(condition: Callable[[], bool], what: str) -> None:
        wait_for(
            lambda: condition() or any(future.done() for future in callers),
            within=120,
            what=what,
            platform=platform,
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=CALLERS) as pool:
        callers = [pool.submit(caller, i) for i in range(CALLERS)]
        try:
            phase(lambda: accepted_count() >= ACCEPTED_PER_PHASE, "events accepted before")
            broker.stop_keeping_data()
            phase(lambda: all(refused_by.values()), "every caller refused during the outage")
            broker.start()
            accepted_then = accepted_count()
            phase(
                lambda: accepted_count() >= accepted_then + ACCEPTED_PER_PHASE,
                "events accepted after the broker came back",
            )
        finally:
            stop.set()
        for future in callers:
            future.result()
    return accepted, sum(refused_by.values())
