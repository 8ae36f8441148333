"""The environment a runtime process starts with."""

from __future__ import annotations

from kubelambda_agent.environment import runtime_environment


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
