"""`kubelambda env`: export lines for a running platform, a clear error without one; a
warning for a variable that looks like a setting and is not one."""

import shlex
from pathlib import Path

import pytest

from kubelambda import credentials
from kubelambda.launch import cli


def test_env_prints_exports_for_clients(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = credentials.load_or_create(tmp_path)
    (tmp_path / "gateway.url").write_text("http://127.0.0.1:7070\n")

    assert cli.main(["--home", str(tmp_path), "env"], environ={}) == 0

    exports = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in capsys.readouterr().out.splitlines()
    )
    assert exports == {
        "AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:7070",
        "AWS_ACCESS_KEY_ID": keys.access_key_id,
        "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "KUBELAMBDA_API_KEY": keys.api_key,
    }


def test_env_without_a_running_platform_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["env"], environ={"KUBELAMBDA_HOME": str(tmp_path)}) == 1
    assert "no running platform" in capsys.readouterr().err


def test_a_variable_that_is_no_setting_is_reported_on_stderr_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials.load_or_create(tmp_path)
    (tmp_path / "gateway.url").write_text("http://127.0.0.1:7070\n")
    environ = {"KUBELAMBDA_HOME": str(tmp_path), "KUBELAMBDA_CAPACITY_LIVE_PER_CORE": "8"}

    assert cli.main(["env"], environ=environ) == 0

    captured = capsys.readouterr()
    assert captured.err == (
        "kubelambda: warning: KUBELAMBDA_CAPACITY_LIVE_PER_CORE is not a setting and is "
        "ignored (did you mean KUBELAMBDA_CAPACITY_PROCESSES_PER_CORE?)\n"
    )
    # ``eval "$(kubelambda env)"`` must still get nothing but exports.
    assert all(line.startswith("export ") for line in captured.out.splitlines())


def test_invalid_settings_exit_with_usage_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["env"], environ={"KUBELAMBDA_PORT": "nope"}) == 2
    assert "invalid settings" in capsys.readouterr().err


def test_env_for_a_cluster_without_credentials_fails_in_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-kubeconfig"
    environ = {"KUBELAMBDA_KUBECONFIG": str(missing)}
    assert cli.main(["env", "--kubernetes", "-n", "kubelambda"], environ=environ) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"kubelambda: no usable cluster credentials in {missing}")
    assert "Traceback" not in captured.err
