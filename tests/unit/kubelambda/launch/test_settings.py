"""Embedded settings come only from the mapping given, and bad values stop the start."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from kubelambda.launch.settings import PlatformSettings


def test_reads_prefixed_variables_and_ignores_the_rest(tmp_path: Path) -> None:
    settings = PlatformSettings.from_environ(
        {
            "KUBELAMBDA_HOME": str(tmp_path),
            "KUBELAMBDA_PORT": "0",
            "KUBELAMBDA_LOG_LEVEL": "debug",
            "PORT": "1",
            "KUBELAMBDA_UNKNOWN": "x",
        }
    )
    assert (settings.home, settings.port, settings.log_level) == (tmp_path, 0, "DEBUG")
    assert settings.url_file == tmp_path / "gateway.url"


def test_unknown_variables_name_what_nothing_reads_with_the_setting_it_resembles() -> None:
    environ = {
        "KUBELAMBDA_PORT": "7070",
        "KUBELAMBDA_PROT": "7071",
        "KUBELAMBDA_UNKNOWN": "x",
        # What ``kubelambda env`` exports, an interpreter for a runtime, the test
        # infrastructure's: read by others, not reported.
        "KUBELAMBDA_API_KEY": "k",
        "KUBELAMBDA_PYTHON_3_12": "/usr/bin/python3.12",
        "KUBELAMBDA_TESTINFRA_STATE": "/tmp/state",
        "KUBELAMBDA_PLATFORM_IMAGE": "localhost/kubelambda/platform:x",
        "PORT": "1",
    }

    assert PlatformSettings.unknown_variables(environ) == [
        "KUBELAMBDA_PROT is not a setting and is ignored (did you mean KUBELAMBDA_PORT?)",
        "KUBELAMBDA_UNKNOWN is not a setting and is ignored",
    ]


def test_process_environment_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELAMBDA_PORT", "9999")
    assert PlatformSettings.from_environ({}).port == 7070


def test_explicit_overrides_win_over_the_environment_and_none_is_ignored() -> None:
    settings = PlatformSettings.from_environ({"KUBELAMBDA_PORT": "8000"}, port=9000, home=None)
    assert settings.port == 9000
    assert settings.home == Path("~/.kubelambda").expanduser().resolve()


@pytest.mark.parametrize(
    "environ",
    [
        {"KUBELAMBDA_PORT": "70000"},
        {"KUBELAMBDA_PORT": "-1"},
        {"KUBELAMBDA_LOG_LEVEL": "chatty"},
        {"KUBELAMBDA_ACTIVATOR_MAX_WAITING": "0"},
        {"KUBELAMBDA_ACTIVATOR_MAX_WAIT_SECONDS": "0"},
        {"KUBELAMBDA_ASYNC_THROTTLE_BACKOFF_SECONDS": "0"},
        {"KUBELAMBDA_LEADER_LEASE_SECONDS": "2"},
    ],
)
def test_bad_values_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        PlatformSettings.from_environ(environ)


def test_async_retry_delays_and_throttle_backoff_are_read() -> None:
    settings = PlatformSettings.from_environ(
        {
            "KUBELAMBDA_ASYNC_RETRY_DELAYS": "1, 2.5",
            "KUBELAMBDA_ASYNC_THROTTLE_BACKOFF_SECONDS": "21",
        }
    )
    assert settings.async_retry_delays == (1.0, 2.5)
    assert settings.async_throttle_backoff_seconds == 21.0
    assert PlatformSettings.from_environ({}).async_throttle_backoff_seconds == 1.0


SASL_SSL = {
    "KUBELAMBDA_KAFKA_BOOTSTRAP": "kafka.example:9093",
    "KUBELAMBDA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KUBELAMBDA_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KUBELAMBDA_KAFKA_SASL_USERNAME": "kubelambda",
    "KUBELAMBDA_KAFKA_SASL_PASSWORD": "pa55-w0rd",
}


def test_complete_sasl_ssl_settings_are_taken_and_the_password_is_not_shown(
    tmp_path: Path,
) -> None:
    cafile = tmp_path / "ca.crt"
    cafile.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = PlatformSettings.from_environ(
        {**SASL_SSL, "KUBELAMBDA_KAFKA_SSL_CAFILE": str(cafile)}
    )
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert settings.kafka_ssl_cafile == cafile
    assert "pa55-w0rd" not in repr(settings)


@pytest.mark.parametrize(
    "missing",
    [
        "KUBELAMBDA_KAFKA_SASL_MECHANISM",
        "KUBELAMBDA_KAFKA_SASL_USERNAME",
        "KUBELAMBDA_KAFKA_SASL_PASSWORD",
    ],
)
def test_a_sasl_protocol_without_mechanism_username_or_password_is_refused(missing: str) -> None:
    environ = {key: value for key, value in SASL_SSL.items() if key != missing}
    with pytest.raises(ValidationError, match="needs KUBELAMBDA_KAFKA_SASL_MECHANISM"):
        PlatformSettings.from_environ(environ)


def test_a_kafka_ca_file_that_does_not_exist_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="kafka_ssl_cafile"):
        PlatformSettings.from_environ(
            {**SASL_SSL, "KUBELAMBDA_KAFKA_SSL_CAFILE": str(tmp_path / "missing.crt")}
        )
