"""The platform's own processes and files (issue 10, items 5-7), through `kubelambda up`.

A platform killed with SIGKILL takes its agents and runtimes along, and the next start on
its home reaps whatever escaped; one home serves one platform at a time, and a refused
start says why in one sentence; nothing under the home is readable by anyone else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    KUBELAMBDA,
    Platform,
    create_function,
    log_text,
    start_platform,
    stop_platform,
)

GONE_WITHIN_SECONDS = 5.0

# Starts a process in a session of its own that outlives the runtime (and so escapes
# every parent-death signal): only a reap by the home's marker finds it.
ESCAPING_HANDLER = """
import subprocess

def handler(event, context):
    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    return {"child": child.pid}
"""

PLAIN_HANDLER = """
def handler(event, context):
    print("seen", event)
    return {"ok": True}
"""


def processes_of(home: Path) -> set[int]:
    """Live processes (other than this one) whose environment, command line or working
    directory names ``home``, or the instance files of its platform (where instances
    that run as users of their own have their code): every agent, runtime and function
    process of its platform."""
    needles = [str(home).encode()]
    with contextlib.suppress(OSError):
        needles.append((home / "instance-files").read_bytes().strip())
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid() or not alive(proc):
            continue
        try:
            marks = (proc / "environ").read_bytes() + (proc / "cmdline").read_bytes()
            cwd = os.readlink(proc / "cwd").encode()
        except OSError:
            continue
        for needle in needles:
            if needle in marks or cwd == needle or cwd.startswith(needle + b"/"):
                found.add(int(proc.name))
    return found


def alive(proc: Path) -> bool:
    """Running: a zombie waits for a parent that is not us to collect it."""
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until_gone(pids: set[int]) -> set[int]:
    """Which of ``pids`` are still alive after a few seconds' wait."""
    deadline = time.monotonic() + GONE_WITHIN_SECONDS
    while (left := {pid for pid in pids if alive(Path(f"/proc/{pid}"))}) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    return left


def invoke(client: Any, name: str, **kwargs: Any) -> Any:
    response = client.invoke(FunctionName=name, Payload=b"{}", **kwargs)
    body = response["Payload"].read()
    assert "FunctionError" not in response, body
    return json.loads(body) if body else None


def kill_platform(platform: Platform) -> None:
    platform.process.send_signal(signal.SIGKILL)  # the platform alone, not its group
    platform.process.wait()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    for pid in processes_of(home):  # whatever a failed test left
        os.kill(pid, signal.SIGKILL)
    # A platform killed outright leaves its instances' files to its home's next start.
    with contextlib.suppress(OSError):
        shutil.rmtree((home / "instance-files").read_text().strip())


def test_killing_the_platform_takes_its_agents_and_runtimes_along(home: Path) -> None:
    platform = start_platform(home)
    create_function(platform.lambda_client(), "plain", PLAIN_HANDLER)
    assert invoke(platform.lambda_client(), "plain") == {"ok": True}
    time.sleep(1.5)  # the spare agent is topped up a moment after the start
    before = processes_of(home)
    assert len(before) >= 3, "expected the instance's agent and runtime, and a spare agent"

    kill_platform(platform)

    assert wait_until_gone(before) == set()


def test_a_restart_reaps_what_a_killed_platform_left(home: Path) -> None:
    platform = start_platform(home)
    create_function(platform.lambda_client(), "escaping", ESCAPING_HANDLER)
    child = invoke(platform.lambda_client(), "escaping")["child"]
    before = processes_of(home)
    assert child in before
    kill_platform(platform)
    # start_platform waits for this file; the dead run's would pass for the new one's.
    (home / "gateway.url").unlink()

    restarted = start_platform(home)
    try:
        assert wait_until_gone(before) == set()
        assert invoke(restarted.lambda_client(), "escaping")["child"] > 0
    finally:
        stop_platform(restarted.process)
    assert wait_until_gone(processes_of(home)) == set()


def run_up(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBELAMBDA, "up", *args],
        env={**os.environ, "KUBELAMBDA_HOME": str(home), "KUBELAMBDA_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_platform_on_the_same_home_is_refused_naming_the_first(home: Path) -> None:
    first = start_platform(home)
    try:
        second = run_up(home)
        url = (home / "gateway.url").read_text().strip()
        assert first.process.poll() is None
    finally:
        stop_platform(first.process)

    assert second.returncode != 0
    assert second.stdout == ""
    message = second.stderr.strip()
    assert "\n" not in message and "Traceback" not in message, second.stderr
    assert f"pid {first.process.pid}" in message
    assert url == first.url and url in message


def test_a_taken_port_is_refused_in_one_sentence(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = run_up(home, "--port", str(port))

    assert refused.returncode != 0
    message = refused.stderr.strip()
    assert "\n" not in message and "Traceback" not in message, refused.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in message


def test_everything_under_the_home_is_owner_only(home: Path) -> None:
    # A home an earlier version left readable is repaired at start.
    home.mkdir(mode=0o755)
    (home / "logs").mkdir(mode=0o755)
    (home / "logs" / "old.log").write_text("old\n")
    (home / "logs" / "old.log").chmod(0o644)
    platform = start_platform(home)
    try:
        client = platform.lambda_client()
        create_function(
            client, "secretive", PLAIN_HANDLER, Environment={"Variables": {"TOKEN": "s3cret"}}
        )
        assert invoke(client, "secretive") == {"ok": True}
        assert (
            client.invoke(FunctionName="secretive", InvocationType="Event", Payload=b"{}")[
                "StatusCode"
            ]
            == 202
        )
        time.sleep(1)  # the dispatcher runs the event: the queue's WAL and the log grow
        readable = {
            str(path.relative_to(home)): oct(stat.S_IMODE(path.lstat().st_mode))
            for path in [home, *home.rglob("*")]
            if not path.is_symlink() and open_to_others(path.lstat())
        }
        names = {path.name for path in home.rglob("*")}
    finally:
        stop_platform(platform.process)

    assert {"state.db", "queue.db", "credentials.json", "logs", "code"} <= names
    assert any(name.endswith(".log") and name != "old.log" for name in names)
    assert readable == {}


def open_to_others(status: os.stat_result) -> bool:
    """Any permission for others, or for a group other than a function's own: run as
    root, the platform gives a function's group its log directory (and the function's
    user owns the files it writes there)."""
    mode = stat.S_IMODE(status.st_mode)
    return bool(mode & 0o007 or (mode & 0o070 and status.st_gid == os.getgid()))


def test_slow_clients_cannot_hold_the_gateways_connections(home: Path) -> None:
    environ = {
        **os.environ,
        "KUBELAMBDA_HEADER_TIMEOUT_SECONDS": "1",
        "KUBELAMBDA_BODY_IDLE_TIMEOUT_SECONDS": "1",
    }
    platform = start_platform(home, environ=environ)
    try:
        host, port = platform.url.removeprefix("http://").split(":")
        # slowloris: 20 connections sending their headers a byte every half second.
        connections = [socket.create_connection((host, int(port))) for _ in range(20)]
        request = b"POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\n"
        started = time.monotonic()
        open_ones = list(connections)
        for byte in request:
            for connection in list(open_ones):
                try:
                    connection.send(bytes([byte]))
                except OSError:
                    open_ones.remove(connection)
            if not open_ones or time.monotonic() - started > 10:
                break
            time.sleep(0.5)
        for connection in connections:
            connection.settimeout(5)
            assert connection.recv(1024) == b""  # closed by the gateway
            connection.close()
        assert time.monotonic() - started < 5
        # Meanwhile and after, a prompt client is served.
        with socket.create_connection((host, int(port))) as prompt:
            prompt.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert prompt.recv(1024).startswith(b"HTTP/1.1 200")
    finally:
        stop_platform(platform.process)


def test_a_platform_started_with_a_low_open_file_limit_serves_hundreds_of_connections(
    home: Path,
) -> None:
    # The soft limit of most sessions and services is 1,024; 256 makes the point sooner.
    platform = start_platform(home, open_files_soft_limit=256)
    try:
        host, port = platform.url.removeprefix("http://").split(":")
        connections = [socket.create_connection((host, int(port))) for _ in range(400)]
        for connection in connections:
            connection.settimeout(10)
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answered = sum(c.recv(1024).startswith(b"HTTP/1.1 200") for c in connections)
        for connection in connections:
            connection.close()
        assert answered == len(connections)
        assert "open file limit raised from=256" in log_text(home)
    finally:
        stop_platform(platform.process)
