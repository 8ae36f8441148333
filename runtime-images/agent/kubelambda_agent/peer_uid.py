"""Who is on the other end of a loopback TCP connection, from ``/proc/net/tcp``.

Used by each slot's Runtime API server: the runtime it serves runs as the agent's own
user, and any other local user connecting there (another function's instance, when a
root platform runs each function as a user of its own) is refused before it can take an
event off ``/next``. The Runtime API must be TCP (``AWS_LAMBDA_RUNTIME_API`` is
host:port for every runtime interface client), so the kernel's socket table is the way
to learn the peer's owner. In a pod the table holds only the pod's own sockets.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

__all__ = ["loopback_peer_uid"]

_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def loopback_peer_uid(
    peer: tuple[str, int], local: tuple[str, int], *, tables: tuple[Path, ...] = _TABLES
) -> int | None:
    """The uid owning the socket at ``peer`` connected to ``local`` (both as
    ``getpeername``/``getsockname`` give them); ``None`` when no table lists it."""
    wanted = (_encode(*peer), _encode(*local))
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 7 and (fields[1], fields[2]) == wanted:
                return int(fields[7])
    return None


def _encode(host: str, port: int) -> str:
    """An address as the kernel prints it: the address's 32-bit words in host (little
    endian) byte order, then the port in hex."""
    packed = ipaddress.ip_address(host.split("%")[0]).packed
    words = [packed[i : i + 4][::-1] for i in range(0, len(packed), 4)]
    return f"{b''.join(words).hex().upper()}:{port:04X}"
