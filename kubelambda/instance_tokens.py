"""Tokens derived from the platform's key: what a pod presents and what it is presented.

In Kubernetes mode the controller gives each version's pods two tokens (in the version's
Secret) and the gateway, holding the same key, derives them again instead of reading
Secrets: the *invoke token* the gateway presents to an instance (an agent refuses
invocations without it, so another function's code cannot invoke it directly), and the
*code token* a pod presents to fetch its own package and no other. HMAC-SHA256 keeps a
token from revealing the key or any other token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from kubelambda.models import Target

__all__ = [
    "KEY_BYTES",
    "code_token",
    "derive",
    "invoke_token",
    "load_or_create_key",
    "valid_code_token",
]

KEY_BYTES = 32


def invoke_token(key: bytes, target: Target) -> str:
    """What the gateway presents to every instance of ``target``."""
    return derive(key, f"invoke\0{target.namespace}\0{target.function_name}\0{target.version}")


def code_token(key: bytes, sha256_hex: str) -> str:
    """What a pod presents to fetch the package ``sha256_hex``."""
    return derive(key, f"code\0{sha256_hex}")


def valid_code_token(key: bytes, sha256_hex: str, presented: str) -> bool:
    return hmac.compare_digest(code_token(key, sha256_hex), presented)


def load_or_create_key(path: Path) -> bytes:
    """The key in ``path`` (owner-only), made on first use."""
    if not path.exists():
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # made by another process meanwhile: read that one
        else:
            with os.fdopen(fd, "w") as out:
                out.write(key.hex())
    return bytes.fromhex(path.read_text().strip())


def derive(key: bytes, message: str) -> str:
    """A token for ``message`` that reveals neither the key nor any other token."""
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
