"""The local instance's environment, log stream name and log path."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller import errors
from controller.backends.local_env import instance_environment, log_path
from kubelambda.instance_environment import InitializationType, log_stream_name
from kubelambda.models import DEFAULT_NAMESPACE, FunctionVersion, frozen_mapping
from tests import factories

STARTED = datetime(2026, 3, 7, 23, 59, tzinfo=UTC)
INSTANCE = "0123456789abcdef0123456789abcdef"
TASK_ROOT = Path("/srv/code/unpacked/0f1e2d")


def version(runtime: str = "python3.11", **changes: object) -> FunctionVersion:
    defaults: dict[str, object] = {
        "runtime": runtime,
        "memory_size": 256,
        "timeout": 12,
        "environment": frozen_mapping({"TABLE": "orders", "AWS_REGION": "moon-1"}),
    }
    fields: dict[str, Any] = {"name": "orders", "version": "7"} | defaults | changes
    return factories.function_version(**fields)


def environment(
    v: FunctionVersion,
    host: dict[str, str] | None = None,
    *,
    concurrency: int = 4,
    **options: Any,
) -> dict[str, str]:
    return instance_environment(
        v,
        task_root=TASK_ROOT,
        instance_id=INSTANCE,
        concurrency=concurrency,
        runtime_idle_seconds=600.0,
        initialization_type=InitializationType.PROVISIONED,
        region="eu-west-1",
        started=STARTED,
        host_environ=host if host is not None else {"PATH": "/usr/bin"},
        invoke_token="secret-token",
        **options,
    )


@pytest.mark.parametrize(
    ("version_name", "expected"),
    [
        ("$LATEST", "2026/03/07/[$LATEST]0123456789abcdef0123456789abcdef"),
        ("12", "2026/03/07/[12]0123456789abcdef0123456789abcdef"),
    ],
)
def test_log_stream_name_has_lambdas_form(version_name: str, expected: str) -> None:
    assert log_stream_name(version_name, INSTANCE, STARTED) == expected


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [
        # The default namespace keeps the layout users of the embedded mode know.
        (DEFAULT_NAMESPACE, f"/home/logs/orders/7/{INSTANCE}.log"),
        ("team-a", f"/home/logs/team-a/orders/7/{INSTANCE}.log"),
    ],
)
def test_log_path_is_per_namespace_function_version_and_instance(
    namespace: str, expected: str
) -> None:
    assert log_path(Path("/home"), version(namespace=namespace), INSTANCE) == Path(expected)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("_HANDLER", "app.handler"),
        ("LAMBDA_TASK_ROOT", "/srv/code/unpacked/0f1e2d"),
        ("AWS_LAMBDA_FUNCTION_NAME", "orders"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "7"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/orders"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", f"2026/03/07/[7]{INSTANCE}"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency"),
        ("AWS_REGION", "eu-west-1"),
        ("KUBELAMBDA_AGENT_LISTEN", "unix"),
        ("KUBELAMBDA_AGENT_CONCURRENCY", "4"),
        ("KUBELAMBDA_AGENT_RUNTIME", "python3.11"),
        ("KUBELAMBDA_AGENT_TIMEOUT_SECONDS", "12"),
        ("KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS", "600.0"),
        ("KUBELAMBDA_AGENT_PYTHON", sys._base_executable),
        ("TABLE", "orders"),
        ("PATH", "/usr/bin"),
    ],
)
def test_environment_variable(name: str, value: str) -> None:
    assert environment(version())[name] == value


def test_an_instance_of_concurrency_one_has_no_runtime_to_stop_early() -> None:
    assert "KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS" not in environment(version(), concurrency=1)


def test_platform_environment_does_not_leak_into_functions() -> None:
    env = environment(version(), host={"PATH": "/bin", "KUBELAMBDA_ADMIN_KEY": "secret"})

    assert "KUBELAMBDA_ADMIN_KEY" not in env


def test_provided_runtime_needs_no_python() -> None:
    assert "KUBELAMBDA_AGENT_PYTHON" not in environment(version(runtime="provided.al2023"))


def test_python_runtime_missing_on_host_is_refused() -> None:
    host = {"PATH": "/nonexistent", "KUBELAMBDA_PYTHON_3_13": "/nonexistent/python3.13"}

    with pytest.raises(errors.RuntimeUnavailable):
        environment(version(runtime="python3.13"), host=host)


def test_an_instance_of_its_own_user_gets_its_private_directory_as_tmpdir_and_home() -> None:
    env = environment(version(), private_directory=Path("/run/k/tmp/0123"))

    assert (env["TMPDIR"], env["HOME"]) == ("/run/k/tmp/0123", "/run/k/tmp/0123")


def test_an_instance_of_the_platforms_user_gets_neither_tmpdir_nor_home() -> None:
    env = environment(version(), host={"PATH": "/bin", "HOME": "/root", "TMPDIR": "/x"})

    assert "TMPDIR" not in env and "HOME" not in env


def test_the_interpreter_is_one_the_instances_user_can_run() -> None:
    refused: list[str] = []

    def usable(python: str) -> bool:
        refused.append(python)
        return False

    with pytest.raises(errors.RuntimeUnavailable):
        environment(version(), usable=usable)
    assert sys._base_executable in refused
