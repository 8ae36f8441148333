"""The platform's secrets: the admin key set and the instance key, from where they live.

Out of cluster (``kubelambda up``) they are generated under the home on the first start;
in cluster every replica reads the same ones from the mounted Secret the Helm chart
generates (``KUBELAMBDA_SECRETS_DIR``: files ``access-key-id``, ``secret-access-key``,
``api-key``, ``instance-key``), so any gateway accepts the admin key and derives the
tokens the controller gave the pods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kubelambda import credentials, instance_tokens
from kubelambda.launch.errors import PlatformStartError

__all__ = ["PlatformSecrets", "from_dir", "from_home"]

_FILES = ("access-key-id", "secret-access-key", "api-key", "instance-key")


@dataclass(frozen=True, slots=True)
class PlatformSecrets:
    keys: credentials.Credentials
    instance_key: bytes = field(repr=False)


def from_home(home: Path) -> PlatformSecrets:
    """The home's secrets, generated (owner-only) on the first start."""
    return PlatformSecrets(
        keys=credentials.load_or_create(home),
        instance_key=instance_tokens.load_or_create_key(home / "instance.key"),
    )


def from_dir(directory: Path) -> PlatformSecrets:
    """The mounted Secret's values; a missing or malformed one stops the start, naming it."""
    values: dict[str, str] = {}
    for name in _FILES:
        try:
            values[name] = (directory / name).read_text().strip()
        except OSError as exc:
            raise PlatformStartError(f"cannot read the secret {directory / name}: {exc}") from exc
        if not values[name]:
            raise PlatformStartError(f"the secret {directory / name} is empty")
    try:
        instance_key = bytes.fromhex(values["instance-key"])
    except ValueError:
        instance_key = b""
    if len(instance_key) != instance_tokens.KEY_BYTES:
        raise PlatformStartError(
            f"{directory / 'instance-key'} must hold {instance_tokens.KEY_BYTES * 2} hex digits"
        )
    keys = credentials.Credentials(
        access_key_id=values["access-key-id"],
        secret_access_key=values["secret-access-key"],
        api_key=values["api-key"],
    )
    return PlatformSecrets(keys=keys, instance_key=instance_key)
