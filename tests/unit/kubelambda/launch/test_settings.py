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
    ],
)
def test_bad_values_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        PlatformSettings.from_environ(environ)
