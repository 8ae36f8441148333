"""Tokens derived from the platform key: one per version to invoke, one per package to fetch."""

from __future__ import annotations

import stat
from pathlib import Path

from kubelambda import instance_tokens
from kubelambda.models import Target

KEY = bytes(range(32))
DIGEST = "ab" * 32


def test_invoke_tokens_differ_by_namespace_function_and_version() -> None:
    tokens = {
        instance_tokens.invoke_token(KEY, Target(namespace, function, version))
        for namespace, function, version in [
            ("a", "f", "1"),
            ("b", "f", "1"),
            ("a", "g", "1"),
            ("a", "f", "2"),
            ("a", "f1", ""),
        ]
    }
    assert len(tokens) == 5


def test_a_code_token_names_one_package_under_one_key() -> None:
    token = instance_tokens.code_token(KEY, DIGEST)
    assert instance_tokens.valid_code_token(KEY, DIGEST, token)
    assert not instance_tokens.valid_code_token(KEY, "cd" * 32, token)
    assert not instance_tokens.valid_code_token(bytes(32), DIGEST, token)
    assert token != instance_tokens.invoke_token(KEY, Target("a", "f", "1"))


def test_the_key_is_made_once_owner_only_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "instance.key"
    key = instance_tokens.load_or_create_key(path)
    assert len(key) == instance_tokens.KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert instance_tokens.load_or_create_key(path) == key
