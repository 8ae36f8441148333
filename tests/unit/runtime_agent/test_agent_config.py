"""Parsing and validating the agent's environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from kubelambda_agent.config import UNIX_LISTEN, ConfigError, parse_config


@pytest.fixture
def base(tmp_path: Path) -> dict[str, str]:
    return {
        "KUBELAMBDA_AGENT_RUNTIME": "python3.11",
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "KUBELAMBDA_AGENT_INVOKE_TOKEN": "k" * 32,
    }


def test_defaults(base: dict[str, str]) -> None:
    config = parse_config(base)

    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 8080)
    assert config.concurrency == 1
    assert config.timeout_seconds == 3.0
    assert config.python == sys.executable
    assert config.ready_fd is None
    assert config.function_version == "$LATEST"
    assert config.memory_size_mb == 128
    assert config.runtime_idle_seconds == 300.0
    assert config.environment_concurrency is None
    assert config.separate_environments is False
    assert config.hosted_environments == 1
    assert config.slots_per_environment == 1


def test_explicit_values(base: dict[str, str]) -> None:
    read_fd, write_fd = os.pipe()
    try:
        config = parse_config(
            {
                **base,
                "KUBELAMBDA_AGENT_LISTEN": "127.0.0.1:0",
                "KUBELAMBDA_AGENT_CONCURRENCY": "16",
                "KUBELAMBDA_AGENT_TIMEOUT_SECONDS": "1.5",
                "KUBELAMBDA_AGENT_READY_FD": str(write_fd),
                "AWS_LAMBDA_FUNCTION_VERSION": "7",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
                "KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS": "60.5",
                "KUBELAMBDA_AGENT_ENVIRONMENT_CONCURRENCY": "4",
            }
        )
    finally:
        os.close(read_fd)
        os.close(write_fd)

    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 0)
    assert (config.concurrency, config.timeout_seconds) == (16, 1.5)
    assert config.ready_fd == write_fd
    assert (config.function_version, config.memory_size_mb) == ("7", 1024)
    assert config.runtime_idle_seconds == 60.5
    assert config.environment_concurrency == 4
    assert config.hosted_environments == 4
    assert config.slots_per_environment == 4
    assert config.separate_environments is False


def test_ipv6_listen_address_loses_its_brackets(base: dict[str, str]) -> None:
    config = parse_config({**base, "KUBELAMBDA_AGENT_LISTEN": "[::]:9000"})

    assert (config.listen_host, config.listen_port) == ("::", 9000)


def test_unix_listens_on_a_unix_socket_the_kernel_names(base: dict[str, str]) -> None:
    config = parse_config({**base, "KUBELAMBDA_AGENT_LISTEN": "unix"})

    assert (config.listen_host, config.listen_port) == (UNIX_LISTEN, 0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KUBELAMBDA_AGENT_RUNTIME", ""),
        ("KUBELAMBDA_AGENT_RUNTIME", "nodejs20.x"),
        ("KUBELAMBDA_AGENT_LISTEN", "8080"),
        ("KUBELAMBDA_AGENT_LISTEN", "host:http"),
        ("KUBELAMBDA_AGENT_LISTEN", "host:70000"),
        ("KUBELAMBDA_AGENT_LISTEN", "unix:/run/agent.sock"),
        ("KUBELAMBDA_AGENT_CONCURRENCY", "0"),
        ("KUBELAMBDA_AGENT_CONCURRENCY", "four"),
        ("KUBELAMBDA_AGENT_CONCURRENCY", "100000"),
        ("KUBELAMBDA_AGENT_TIMEOUT_SECONDS", "0"),
        ("KUBELAMBDA_AGENT_TIMEOUT_SECONDS", "901"),
        ("KUBELAMBDA_AGENT_TIMEOUT_SECONDS", "nan"),
        ("KUBELAMBDA_AGENT_TIMEOUT_SECONDS", "soon"),
        ("KUBELAMBDA_AGENT_READY_FD", "x"),
        ("KUBELAMBDA_AGENT_READY_FD", "4095"),
        ("KUBELAMBDA_AGENT_PYTHON", "/no/such/python"),
        ("KUBELAMBDA_AGENT_INVOKE_TOKEN", ""),
        ("KUBELAMBDA_AGENT_INVOKE_TOKEN", "k" * 31),
        ("KUBELAMBDA_AGENT_INVOKE_TOKEN", "k" * 31 + "\n"),
        ("LAMBDA_TASK_ROOT", "/no/such/dir"),
        ("KUBELAMBDA_AGENT_RUNTIME_DIR", "/no/such/dir"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots"),
        ("KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS", "0"),
        ("KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS", "-5"),
        ("KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS", "nan"),
        ("KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS", "a while"),
        ("KUBELAMBDA_AGENT_ENVIRONMENT_CONCURRENCY", "yes"),
        ("KUBELAMBDA_AGENT_ENVIRONMENT_CONCURRENCY", ""),
        ("KUBELAMBDA_AGENT_ENVIRONMENT_CONCURRENCY", "0"),
        ("KUBELAMBDA_AGENT_ENVIRONMENT_CONCURRENCY", "2"),
    ],
)
def test_invalid_values_are_refused_naming_the_variable(
    base: dict[str, str], variable: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=variable):
        parse_config({**base, variable: value})


def test_python_runtimes_run_the_built_in_bootstrap_unbuffered(base: dict[str, str]) -> None:
    command = parse_config(base).runtime_command

    assert command[:2] == [sys.executable, "-u"]
    assert command[2].endswith("kubelambda_agent/python_bootstrap.py")


def test_the_bootstrap_may_come_from_elsewhere(base: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "python_bootstrap.py").write_text("")
    config = parse_config({**base, "KUBELAMBDA_AGENT_RUNTIME_DIR": str(tmp_path)})

    assert config.runtime_command[2] == str(tmp_path / "python_bootstrap.py")
    assert config.runtime_dir == str(tmp_path)


def test_provided_runtimes_run_the_package_bootstrap(base: dict[str, str], tmp_path: Path) -> None:
    config = parse_config({**base, "KUBELAMBDA_AGENT_RUNTIME": "provided.al2023"})

    assert config.runtime_command == [str(tmp_path / "bootstrap")]


def test_provided_runtimes_do_not_need_a_python(base: dict[str, str]) -> None:
    config = parse_config(
        {**base, "KUBELAMBDA_AGENT_RUNTIME": "provided", "KUBELAMBDA_AGENT_PYTHON": "/no/python"}
    )

    assert config.runtime == "provided"


ANNOUNCING = {
    "KUBELAMBDA_AGENT_ANNOUNCE_URL": "http://10.244.0.1:7070/kubelambda/instances/ready",
    "KUBELAMBDA_POD_NAMESPACE": "team-a",
    "KUBELAMBDA_POD_NAME": "hello-latest-abc12",
    "KUBELAMBDA_POD_IP": "10.244.0.9",
}


def test_a_pod_agent_announces_as_its_pod(base: dict[str, str]) -> None:
    announcement = parse_config({**base, **ANNOUNCING}).announcement
    assert announcement is not None
    assert (announcement.url, announcement.namespace, announcement.pod, announcement.ip) == (
        ANNOUNCING["KUBELAMBDA_AGENT_ANNOUNCE_URL"],
        "team-a",
        "hello-latest-abc12",
        "10.244.0.9",
    )
    assert parse_config(base).announcement is None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("KUBELAMBDA_AGENT_ANNOUNCE_URL", "ftp://x/y", "is not an http"),
        ("KUBELAMBDA_POD_IP", "", "KUBELAMBDA_POD_IP must be set"),
        ("KUBELAMBDA_POD_NAME", "", "KUBELAMBDA_POD_NAME must be set"),
    ],
)
def test_an_incomplete_announcement_is_refused(
    base: dict[str, str], variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**base, **ANNOUNCING, variable: value})


def test_environments_of_one_slot_each_are_separate(base: dict[str, str]) -> None:
    config = parse_config(
        {
            **base,
            "KUBELAMBDA_AGENT_CONCURRENCY": "64",
            "KUBELAMBDA_AGENT_ENVIRONMENT_CONCURRENCY": "1",
        }
    )

    assert config.hosted_environments == 64
    assert config.separate_environments is True


def test_an_environment_concurrency_that_does_not_divide_the_slots_is_refused(
    base: dict[str, str],
) -> None:
    with pytest.raises(ConfigError, match="must divide KUBELAMBDA_AGENT_CONCURRENCY=16"):
        parse_config(
            {
                **base,
                "KUBELAMBDA_AGENT_CONCURRENCY": "16",
                "KUBELAMBDA_AGENT_ENVIRONMENT_CONCURRENCY": "3",
            }
        )
