"""The Runtime API admits only the agent's own user: real loopback connections, one from
this process and one from a process of another user (root only can make one)."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
from kubelambda_agent.peer_uid import loopback_peer_uid

OTHER_UID = 65534  # nobody


def connected_pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    return listener, client, accepted


def test_a_connection_from_this_process_is_its_own_user() -> None:
    listener, client, accepted = connected_pair()
    with listener, client, accepted:
        owner = loopback_peer_uid(accepted.getpeername(), accepted.getsockname())
    assert owner == os.getuid()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can connect as another user")
def test_a_connection_from_another_user_is_that_user() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    connect = (
        f"import socket, sys; s = socket.create_connection(('127.0.0.1', {port})); sys.stdin.read()"
    )
    with (
        listener,
        subprocess.Popen(
            # The system's interpreter: the test's may sit where that user cannot go (/root).
            ["/usr/bin/python3", "-c", connect],
            user=OTHER_UID,
            group=OTHER_UID,
            stdin=subprocess.PIPE,
        ) as other,
    ):
        accepted, _ = listener.accept()
        with accepted:
            owner = loopback_peer_uid(accepted.getpeername(), accepted.getsockname())
        assert other.stdin is not None
        other.stdin.close()
    assert owner == OTHER_UID
