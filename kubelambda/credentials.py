"""Access keys of the platform: who may call the gateway, and the secrets that prove it.

The embedded launcher calls ``load_or_create(home)`` at start (the first start generates
an admin key set in ``$KUBELAMBDA_HOME/credentials.json``, mode 0600); ``kubelambda env``
calls ``load(home)`` to print them; the gateway's authenticator looks keys up in a
``Keyring``. Each key set is bound to a ``Principal`` (a namespace and scopes), so
namespaced, scoped keys fit in later without changing the callers. Secret values are
kept out of ``repr`` so they cannot reach a log line by accident.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ADMIN",
    "CREDENTIALS_FILE",
    "Credentials",
    "Keyring",
    "Principal",
    "generate",
    "load",
    "load_or_create",
]

CREDENTIALS_FILE = "credentials.json"
ALL_SCOPES = frozenset({"*"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: what it may do (``scopes``) and where (``namespace``)."""

    name: str
    namespace: str = "default"
    scopes: frozenset[str] = ALL_SCOPES

    def allows(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes


ADMIN = Principal(name="admin")


@dataclass(frozen=True, slots=True)
class Credentials:
    """One key set: an access key pair for SigV4 clients and an API key for bearer clients."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    api_key: str = field(repr=False)
    principal: Principal = ADMIN


class Keyring:
    """Looks a caller's key up in constant time per key; the authenticator's only source."""

    def __init__(self, entries: Iterable[Credentials]) -> None:
        self._by_access_key = {entry.access_key_id: entry for entry in entries}
        # Keyed by a digest so a dict lookup never compares secret bytes with ``==``.
        self._by_api_key = {_digest(entry.api_key): entry for entry in self._by_access_key.values()}

    def by_access_key(self, access_key_id: str) -> Credentials | None:
        return self._by_access_key.get(access_key_id)

    def by_api_key(self, api_key: str) -> Credentials | None:
        return self._by_api_key.get(_digest(api_key))


def generate() -> Credentials:
    """A fresh admin key set, shaped like AWS's keys so tools that check the form accept it."""
    alphabet = string.ascii_uppercase + string.digits
    access_key_id = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    return Credentials(
        access_key_id=access_key_id,
        secret_access_key=secrets.token_urlsafe(30)[:40],
        api_key="kl_" + secrets.token_urlsafe(32),
    )


def load(home: Path) -> Credentials:
    """The key set saved under ``home``; ``FileNotFoundError`` when none was created yet."""
    raw = json.loads((home / CREDENTIALS_FILE).read_text())
    try:
        return Credentials(
            access_key_id=str(raw["access_key_id"]),
            secret_access_key=str(raw["secret_access_key"]),
            api_key=str(raw["api_key"]),
        )
    except KeyError as exc:
        raise ValueError(f"{home / CREDENTIALS_FILE} lacks the field {exc.args[0]!r}") from exc


def load_or_create(home: Path) -> Credentials:
    """Load the key set, generating and saving one (mode 0600) on the first start."""
    path = home / CREDENTIALS_FILE
    if path.exists():
        return load(home)
    home.mkdir(parents=True, exist_ok=True)
    created = generate()
    payload = {
        "access_key_id": created.access_key_id,
        "secret_access_key": created.secret_access_key,
        "api_key": created.api_key,
    }
    # O_EXCL: two processes starting at once must not overwrite each other's keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load(home)
    with os.fdopen(fd, "w") as out:
        json.dump(payload, out, indent=2)
        out.write("\n")
    return created


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
