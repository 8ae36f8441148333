"""The platform's key file: generated once, private, and looked up by the authenticator."""

from __future__ import annotations

import json
import stat

import pytest

from kubelambda import credentials
from kubelambda.credentials import ADMIN, Credentials, Keyring


def test_first_start_writes_a_private_key_file(tmp_path):
    created = credentials.load_or_create(tmp_path)
    path = tmp_path / credentials.CREDENTIALS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "access_key_id": created.access_key_id,
        "secret_access_key": created.secret_access_key,
        "api_key": created.api_key,
    }


def test_later_starts_load_the_same_keys(tmp_path):
    assert credentials.load_or_create(tmp_path) == credentials.load_or_create(tmp_path)
    assert credentials.load(tmp_path) == credentials.load_or_create(tmp_path)


def test_load_without_a_key_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError):
        credentials.load(tmp_path)


def test_a_key_file_missing_a_field_is_refused(tmp_path):
    (tmp_path / credentials.CREDENTIALS_FILE).write_text('{"access_key_id": "a"}')
    with pytest.raises(ValueError, match="secret_access_key"):
        credentials.load(tmp_path)


def test_generated_keys_look_like_aws_keys_and_differ():
    first, second = credentials.generate(), credentials.generate()
    assert first.access_key_id.startswith("AKIA") and len(first.access_key_id) == 20
    assert len(first.secret_access_key) == 40
    assert first != second


@pytest.mark.parametrize(
    ("access_key", "api_key", "found"),
    [("AKIAONE", "key-one", True), ("AKIAOTHER", "key-other", False)],
)
def test_keyring_finds_keys_by_access_key_or_api_key(access_key, api_key, found):
    keyring = Keyring([Credentials("AKIAONE", "secret", "key-one")])
    assert (keyring.by_access_key(access_key) is not None) is found
    assert (keyring.by_api_key(api_key) is not None) is found


def test_the_generated_principal_is_the_admin_with_every_scope():
    principal = credentials.generate().principal
    assert principal == ADMIN
    assert principal.allows("manage") and principal.allows("invoke:anything")
