"""The environment a runtime process starts with."""

from __future__ import annotations

from kubelambda_agent.environment import runtime_environment, slot_environment


def _build(base: dict[str, str]) -> dict[str, str]:
    return runtime_environment(
        base, runtime="python3.12", api_address="127.0.0.1:4567", runtime_dir="/opt/rt"
    )


def test_agent_settings_are_removed() -> None:
    env = _build({"KUBELAMBDA_AGENT_RUNTIME": "python3.12", "KUBELAMBDA_AGENT_READY_FD": "3"})

    assert not [name for name in env if name.startswith("KUBELAMBDA_AGENT_")]


def test_user_and_launcher_variables_are_kept() -> None:
    env = _build({"_HANDLER": "app.handler", "MY_SETTING": "1", "TZ": "Europe/Paris"})

    assert (env["_HANDLER"], env["MY_SETTING"], env["TZ"]) == ("app.handler", "1", "Europe/Paris")


def test_runtime_api_and_runtime_identity_are_set() -> None:
    env = _build({"AWS_LAMBDA_RUNTIME_API": "stale:1", "AWS_EXECUTION_ENV": "stale"})

    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:4567"
    assert env["LAMBDA_RUNTIME_DIR"] == "/opt/rt"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"


def test_missing_lambda_variables_get_lambda_defaults() -> None:
    env = _build({})

    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["TZ"] == ":UTC"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"


def test_default_region_follows_the_given_region() -> None:
    env = _build({"AWS_REGION": "eu-west-1"})

    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_max_concurrency_is_never_passed_on() -> None:
    env = _build({"AWS_LAMBDA_MAX_CONCURRENCY": "4"})

    assert "AWS_LAMBDA_MAX_CONCURRENCY" not in env


_INSTANCE = {
    "TMPDIR": "/srv/private/abc",
    "HOME": "/srv/private/abc",
    "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/02/[$LATEST]" + "0" * 32,
    "_HANDLER": "app.handler",
}


def test_a_separate_environment_has_a_directory_of_its_own_as_tmpdir_and_home() -> None:
    first, second = (slot_environment(_INSTANCE, index) for index in (0, 1))

    assert first["TMPDIR"] == first["HOME"] == "/srv/private/abc/environment-0"
    assert second["TMPDIR"] == second["HOME"] == "/srv/private/abc/environment-1"
    assert second["_HANDLER"] == "app.handler"


def test_every_environment_keeps_the_instances_log_stream() -> None:
    # It names the instance's log file, and the launcher finds the instance's processes by it.
    streams = {slot_environment(_INSTANCE, i)["AWS_LAMBDA_LOG_STREAM_NAME"] for i in range(4)}

    assert streams == {_INSTANCE["AWS_LAMBDA_LOG_STREAM_NAME"]}


def test_without_a_private_directory_a_separate_environment_keeps_the_hosts() -> None:
    env = slot_environment({"HOME": "/home/platform"}, 2)

    assert env == {"HOME": "/home/platform"}
