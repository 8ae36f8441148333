"""The platform's secrets from the chart's mounted Secret: read as given, refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelambda.launch import platform_secrets
from kubelambda.launch.errors import PlatformStartError

VALUES = {
    "access-key-id": "KLAKABCDEFGHIJKLMNOP",
    "secret-access-key": "s" * 40,
    "api-key": "kl_" + "k" * 43,
    "instance-key": "ab" * 32,
}


def mounted(tmp_path: Path, **changes: str | None) -> Path:
    for name, value in {**VALUES, **changes}.items():
        if value is not None:
            # A mounted Secret's files may end with a newline when written by hand.
            (tmp_path / name).write_text(value + "\n")
    return tmp_path


def test_the_mounted_values_are_the_platforms_secrets(tmp_path: Path) -> None:
    secrets = platform_secrets.from_dir(mounted(tmp_path))
    assert secrets.keys.access_key_id == VALUES["access-key-id"]
    assert secrets.keys.secret_access_key == VALUES["secret-access-key"]
    assert secrets.keys.api_key == VALUES["api-key"]
    assert secrets.instance_key == bytes.fromhex(VALUES["instance-key"])
    assert "sss" not in repr(secrets) and "abab" not in repr(secrets)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"api-key": None}, "cannot read the secret .*api-key"),
        ({"secret-access-key": ""}, "secret-access-key is empty"),
        ({"instance-key": "xyz"}, "instance-key must hold 64 hex digits"),
        ({"instance-key": "ab" * 16}, "instance-key must hold 64 hex digits"),
    ],
)
def test_a_missing_or_malformed_secret_stops_the_start(
    tmp_path: Path, changes: dict[str, str | None], complaint: str
) -> None:
    with pytest.raises(PlatformStartError, match=complaint):
        platform_secrets.from_dir(mounted(tmp_path, **changes))
