"""The embedded platform end to end: boto3, the AWS CLI, curl-style HTTP and awslambdaric.

Each test drives the `kubelambda up` subprocess only through public interfaces.
"""

from __future__ import annotations

import base64
import concurrent.futures
import importlib.metadata
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from controller.backends import local_users
from kubelambda import runtimes
from kubelambda.launch.settings import PlatformSettings
from tests.e2e.conftest import Platform, make_zip, metric_value, start_platform, stop_platform

ROLE = "arn:aws:iam::000000000000:role/kubelambda"

VERSIONED_HANDLER = """
VERSION_MARK = {mark!r}

def handler(event, context):
    print("handling", context.aws_request_id)
    return {{"mark": VERSION_MARK, "version": context.function_version,
             "arn": context.invoked_function_arn, "event": event}}
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_python_function(
    client: Any,
    name: str,
    *,
    mark: str = "v1",
    tags: dict[str, str] | None = None,
    timeout: int = 3,
    source: str | None = None,
) -> dict[str, Any]:
    """A function of ``source`` (default: the versioned handler, marked ``mark``), Active."""
    code = VERSIONED_HANDLER.format(mark=mark) if source is None else source
    created = client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": code})},
        Timeout=timeout,
        Tags=tags or {},
    )
    client.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    return created


def provision(
    client: Any, name: str, version: str, executions: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Put a provisioned-concurrency config on ``version`` and wait until it is READY:
    the answer to the put, and the config once READY."""
    put = client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=executions
    )
    deadline = time.monotonic() + 60
    while (
        config := client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    )["Status"] != "READY":
        assert time.monotonic() < deadline, config
        time.sleep(0.2)
    return put, config


def invoke_json(
    client: Any, name: str, payload: object, **kwargs: Any
) -> tuple[dict[str, Any], Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **kwargs)
    return response, json.loads(response["Payload"].read())


def test_create_invoke_and_read_back_through_boto3(lambda_client: Any) -> None:
    name = unique("basic")
    created = create_python_function(lambda_client, name)
    assert created["FunctionName"] == name
    response, body = invoke_json(lambda_client, name, {"hello": "world"}, LogType="Tail")
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    assert body["event"] == {"hello": "world"}
    assert body["arn"].endswith(f":function:{name}")
    request_id = response["ResponseMetadata"]["RequestId"]
    log = base64.b64decode(response["LogResult"]).decode()
    assert f"START RequestId: {request_id} Version: $LATEST" in log
    assert f"handling {request_id}" in log
    assert f"REPORT RequestId: {request_id}" in log
    names = [f["FunctionName"] for f in lambda_client.list_functions()["Functions"]]
    assert name in names


def test_versions_and_weighted_alias_route_between_two_versions(lambda_client: Any) -> None:
    name = unique("canary")
    create_python_function(lambda_client, name, mark="one")
    first = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": VERSIONED_HANDLER.format(mark="two")})
    )
    lambda_client.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    second = lambda_client.publish_version(FunctionName=name)["Version"]
    assert (first, second) == ("1", "2")
    lambda_client.create_alias(
        FunctionName=name,
        Name="live",
        FunctionVersion=first,
        RoutingConfig={"AdditionalVersionWeights": {second: 0.5}},
    )
    executed: Counter[str] = Counter()
    for _ in range(40):
        response, body = invoke_json(lambda_client, name, {}, Qualifier="live")
        executed[response["ExecutedVersion"]] += 1
        assert body["mark"] == {"1": "one", "2": "two"}[response["ExecutedVersion"]]
        assert body["arn"].endswith(f":function:{name}:live")
    assert set(executed) == {"1", "2"}
    response, body = invoke_json(lambda_client, f"{name}:1", {})
    assert (response["ExecutedVersion"], body["mark"]) == ("1", "one")


def test_function_error_comes_back_as_unhandled(lambda_client: Any) -> None:
    name = unique("fails")
    lambda_client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    raise KeyError('nope')\n"})},
    )
    lambda_client.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    response, body = invoke_json(lambda_client, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "KeyError"
    assert body["stackTrace"]


def test_timeout_answers_promptly_and_the_next_invoke_runs(lambda_client: Any) -> None:
    name = unique("slow")
    code = (
        "import time\n\n"
        "def handler(e, c):\n    if e.get('sleep'):\n        time.sleep(30)\n    return 'ok'\n"
    )
    lambda_client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": code})},
        Timeout=1,
    )
    lambda_client.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    started = time.monotonic()
    response, body = invoke_json(lambda_client, name, {"sleep": True})
    assert time.monotonic() - started < 10
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]
    _, body = invoke_json(lambda_client, name, {})
    assert body == "ok"


def test_scales_to_zero_after_idle_timeout_and_back(platform: Platform, lambda_client: Any) -> None:
    name = unique("idle")
    create_python_function(lambda_client, name, tags={"kubelambda.io/idle-timeout-seconds": "2"})
    invoke_json(lambda_client, name, {})
    assert metric_value(platform, "kubelambda_instances_ready", function=name) >= 1
    deadline = time.monotonic() + 30
    while metric_value(platform, "kubelambda_instances_ready", function=name) > 0:
        assert time.monotonic() < deadline, "instances were not scaled to zero"
        time.sleep(0.25)
    response, _ = invoke_json(lambda_client, name, {}, LogType="Tail")
    assert "Init Duration" in base64.b64decode(response["LogResult"]).decode()


def test_reserved_concurrency_zero_throttles(lambda_client: Any) -> None:
    name = unique("throttled")
    create_python_function(lambda_client, name)
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as caught:
        invoke_json(lambda_client, name, {})
    assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_provisioned_concurrency_becomes_ready(lambda_client: Any) -> None:
    name = unique("warm")
    create_python_function(lambda_client, name)
    version = lambda_client.publish_version(FunctionName=name)["Version"]

    put, config = provision(lambda_client, name, version, 2)

    assert put["Status"] == "IN_PROGRESS"
    assert config["AllocatedProvisionedConcurrentExecutions"] == 2


def test_a_provisioned_version_answers_without_a_cold_start(
    platform: Platform, lambda_client: Any
) -> None:
    """Provisioned environments initialise ahead: the first invoke's REPORT carries no
    Init Duration, and no init time is counted for the version."""
    name = unique("prov")
    create_python_function(lambda_client, name)
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    provision(lambda_client, name, version, 1)

    response, _ = invoke_json(lambda_client, name, {}, Qualifier=version, LogType="Tail")

    report = base64.b64decode(response["LogResult"]).decode().splitlines()[-1]
    assert report.startswith("REPORT") and "Init Duration" not in report
    assert (
        metric_value(
            platform, "kubelambda_init_duration_seconds_count", function=name, version=version
        )
        == 0
    )


INSTANCE_NAMING_HANDLER = """
import time

def handler(event, context):
    time.sleep(event["seconds"])
    return context.log_stream_name
"""


def test_concurrent_invokes_fill_one_instance_before_the_next(lambda_client: Any) -> None:
    """Embedded instances share the host's cores, so the gateway packs: with two ready
    instances of concurrency 2, two invocations at once run in the same instance (the
    same log stream), a third in the other."""
    name = unique("packed")
    create_python_function(
        lambda_client,
        name,
        source=INSTANCE_NAMING_HANDLER,
        timeout=10,
        tags={"kubelambda.io/instance-concurrency": "2"},
    )
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    provision(lambda_client, name, version, 4)  # two instances of concurrency 2

    def stream(seconds: float) -> str:
        _, body = invoke_json(lambda_client, name, {"seconds": seconds}, Qualifier=version)
        return str(body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        first_two = [pool.submit(stream, 2.0) for _ in range(2)]
        time.sleep(0.5)  # both are running before the third is sent
        third = pool.submit(stream, 0.0)
        streams = [future.result() for future in first_two]

    assert streams[0] == streams[1]
    assert third.result() != streams[0]


def test_oversized_payload_is_refused_with_413(lambda_client: Any) -> None:
    name = unique("big")
    create_python_function(lambda_client, name)
    with pytest.raises(ClientError) as caught:
        lambda_client.invoke(FunctionName=name, Payload=b'"' + b"x" * (6 * 1024 * 1024 + 10) + b'"')
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_bearer_api_key_and_missing_credentials(platform: Platform, lambda_client: Any) -> None:
    name = unique("bearer")
    create_python_function(lambda_client, name)
    url = f"{platform.url}/2015-03-31/functions/{name}/invocations"
    ok = httpx.post(
        url,
        content=b'{"via": "curl"}',
        headers={"Authorization": f"Bearer {platform.env['KUBELAMBDA_API_KEY']}"},
        timeout=60,
    )
    assert ok.status_code == 200
    assert ok.json()["event"] == {"via": "curl"}
    assert ok.headers["x-amzn-RequestId"]
    refused = httpx.post(url, content=b"{}", timeout=60)
    assert refused.status_code == 403
    assert refused.headers["x-amzn-ErrorType"]


def test_aws_cli_invokes_a_function(platform: Platform, lambda_client: Any, tmp_path: Path) -> None:
    name = unique("cli")
    create_python_function(lambda_client, name)
    out = tmp_path / "out.json"
    aws = str(Path(sys.executable).with_name("aws"))
    result = subprocess.run(
        [
            aws,
            "lambda",
            "invoke",
            "--function-name",
            name,
            "--payload",
            '{"from": "cli"}',
            str(out),
        ],
        env={**os.environ, **platform.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["StatusCode"] == 200
    assert json.loads(out.read_text())["event"] == {"from": "cli"}


def function_python() -> str:
    """An interpreter of this one's version that function code may start: this one, or
    (the platform runs as root, its functions as other users) the one the platform
    would pick for a python runtime, if those users cannot reach this one."""
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    users = local_users.for_platform(PlatformSettings.from_environ({}).instance_uid_base)
    python = runtimes.find_python(runtime, usable=None if users is None else users.can_run)
    assert python is not None, f"no {runtime} that function code may start on this host"
    return python


def installed_files(*distributions: str) -> dict[str, bytes]:
    """The files of installed distributions, by their path in site-packages: what
    ``pip install --target`` would put in a package."""
    files = {}
    for name in distributions:
        for path in importlib.metadata.files(name) or ():
            if "__pycache__" not in path.parts and ".dist-info" not in str(path.parent):
                files[str(path)] = path.locate().read_bytes()
    return files


def test_provided_runtime_runs_awslambdaric_unchanged(lambda_client: Any) -> None:
    name = unique("ric")
    # Shipped in the package, as it is to Lambda: the interpreter may not be this one.
    vendored = installed_files("awslambdaric", "simplejson", "snapshot-restore-py")
    bootstrap = f"#!/bin/sh\nexec {function_python()} -m awslambdaric app.handler\n"
    code = "def handler(event, context):\n    return {'ric': True, 'id': context.aws_request_id}\n"
    lambda_client.create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Role=ROLE,
        Handler="app.handler",
        Code={
            "ZipFile": make_zip(
                {**vendored, "bootstrap": bootstrap, "app.py": code}, executable=("bootstrap",)
            )
        },
    )
    lambda_client.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    response, body = invoke_json(lambda_client, name, {})
    assert body == {"ric": True, "id": response["ResponseMetadata"]["RequestId"]}


def test_make_run_example_is_invocable(tmp_path: Path) -> None:
    running = start_platform(tmp_path / "home", "--example")
    try:
        client: Any = running.lambda_client()
        client.get_waiter("function_active_v2").wait(
            FunctionName="hello", WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
        )
        _, body = invoke_json(client, "hello", {"name": "kubelambda"})
        assert body["message"] == "Hello, kubelambda!"
    finally:
        stop_platform(running.process)
    assert running.process.returncode == 0


def test_region_setting_reaches_the_function_context(tmp_path: Path) -> None:
    """KUBELAMBDA_REGION is the installation's region everywhere: in the ARN the runtime
    hands the function (``context.invoked_function_arn``), in the API's ARNs, and in the
    region ``kubelambda env`` tells clients to sign for."""
    running = start_platform(
        tmp_path / "home", environ={**os.environ, "KUBELAMBDA_REGION": "eu-west-1"}
    )
    try:
        client: Any = running.lambda_client()
        name = unique("region")
        created = create_python_function(client, name)
        _, body = invoke_json(client, f"{name}:$LATEST", {})
    finally:
        stop_platform(running.process)
    assert running.env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert created["FunctionArn"].startswith("arn:aws:lambda:eu-west-1:")
    assert body["arn"] == f"arn:aws:lambda:eu-west-1:000000000000:function:{name}:$LATEST"


def test_latest_runs_the_new_code_once_an_update_reports_successful(lambda_client: Any) -> None:
    """A warm $LATEST instance must not keep answering with the old code after
    UpdateFunctionCode has reported Successful (as on Lambda)."""
    name = unique("update")
    create_python_function(lambda_client, name, mark="old")
    _, before = invoke_json(lambda_client, name, {})
    assert before["mark"] == "old"

    lambda_client.update_function_code(
        FunctionName=name,
        ZipFile=make_zip({"app.py": VERSIONED_HANDLER.format(mark="new")}),
    )
    lambda_client.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    lambda_client.publish_version(FunctionName=name)
    _, after = invoke_json(lambda_client, name, {})

    assert after["mark"] == "new"
