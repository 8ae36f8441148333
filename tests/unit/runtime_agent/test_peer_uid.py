"""Reading a loopback peer's owner from the kernel's socket table (as printed by Linux)."""

from __future__ import annotations

from pathlib import Path

from kubelambda_agent.peer_uid import loopback_peer_uid

HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
    "  timeout inode\n"
)
# 127.0.0.1:40000 -> 127.0.0.1:9001 owned by 2000000123, and the agent's side of it.
TCP = HEADER + (
    "   0: 0100007F:9C40 0100007F:2329 01 00000000:00000000 00:00000000 00000000 2000000123"
    "        0 111 1 0000000000000000 20 4 30 10 -1\n"
    "   1: 0100007F:2329 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0"
    "        0 112 1 0000000000000000 20 4 30 10 -1\n"
)
# [::1]:40001 -> [::1]:9002 owned by 1000.
TCP6 = HEADER + (
    "   0: 00000000000000000000000001000000:9C41 00000000000000000000000001000000:232A 01"
    " 00000000:00000000 00:00000000 00000000  1000        0 113 1 0000000000000000 20 4 30 10 -1\n"
)


def tables(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "tcp").write_text(TCP)
    (tmp_path / "tcp6").write_text(TCP6)
    return tmp_path / "tcp", tmp_path / "tcp6"


def test_the_peer_socket_names_its_owner(tmp_path: Path) -> None:
    found = loopback_peer_uid(("127.0.0.1", 40000), ("127.0.0.1", 9001), tables=tables(tmp_path))
    assert found == 2000000123


def test_ipv6_loopback_is_read_too(tmp_path: Path) -> None:
    found = loopback_peer_uid(("::1", 40001), ("::1", 9002), tables=tables(tmp_path))
    assert found == 1000


def test_an_unlisted_or_unreadable_connection_has_no_owner(tmp_path: Path) -> None:
    assert (
        loopback_peer_uid(("127.0.0.1", 40002), ("127.0.0.1", 9001), tables=tables(tmp_path))
        is None
    )
    assert (
        loopback_peer_uid(("127.0.0.1", 40000), ("127.0.0.1", 9001), tables=(tmp_path / "none",))
        is None
    )
