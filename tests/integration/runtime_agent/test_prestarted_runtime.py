"""A pre-started python runtime (kubelambda_agent.prestarted) as a real process: what it
starts with, what it accepts on its channel before its assignment, and what it becomes."""

from __future__ import annotations

import os
import select
import struct
import sys
import time
from pathlib import Path

import pytest
from kubelambda_agent import config, prestarted
from kubelambda_agent import python_bootstrap as bootstrap
from kubelambda_agent.process import RuntimeProcess

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="runtimes are pre-started on Linux only"
)

HEAD = struct.Struct(">cII")
COMMAND = config.python_runtime_command(sys.executable)
HOST = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "KUBELAMBDA_API_KEY": "platform-secret"}


def initial_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.decode().split("=", 1) for entry in raw.split(b"\0") if entry)


def wait_exit(runtime: RuntimeProcess, within: float = 10.0) -> int:
    ready, _, _ = select.select([runtime.exit_fd], [], [], within)
    assert ready, "the runtime did not exit"
    return runtime.reap()


def output(runtime: RuntimeProcess) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(runtime.output_fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def started() -> prestarted.PrestartedRuntime:
    runtime = prestarted.start(COMMAND, HOST)
    assert runtime is not None
    return runtime


def test_it_starts_with_nothing_of_the_platform(started: prestarted.PrestartedRuntime) -> None:
    environ = initial_environ(started.runtime.pid)

    assert set(environ) == {
        "PATH",
        "LANG",
        "PYTHONNOUSERSITE",
        config.PRESTARTED_VARIABLE,
        config.CHANNEL_FD_VARIABLE,
        "_KUBELAMBDA_RUNTIME_ROOM",
    }
    assert "platform-secret" not in Path(f"/proc/{started.runtime.pid}/environ").read_text()
    assert os.readlink(f"/proc/{started.runtime.pid}/cwd") == "/"
    started.discard()


@pytest.mark.parametrize(
    "garbage",
    [
        HEAD.pack(b"v", 0, 2) + b"{}",  # an invocation before any assignment
        HEAD.pack(b"x", 0, 0),
        b"not a frame at all",
    ],
)
def test_anything_but_an_assignment_ends_it(
    started: prestarted.PrestartedRuntime, garbage: bytes
) -> None:
    runtime = started.runtime
    assert runtime.channel is not None
    runtime.channel.sendall(garbage)
    runtime.channel.shutdown(2)  # a cut frame then ends the channel

    assert wait_exit(runtime) != 0
    runtime.channel.close()
    os.close(runtime.output_fd)


def test_the_end_of_its_channel_ends_it(started: prestarted.PrestartedRuntime) -> None:
    started.discard()

    assert started.runtime.returncode == 1


def test_assigned_it_becomes_the_functions_runtime(
    started: prestarted.PrestartedRuntime, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(
        "import os, sys\n"
        "print('imported', os.getcwd(), sys.path[0], os.environ['FUNCTION_ONLY'])\n"
        "def handler(event, context):\n"
        "    return event\n"
    )
    environ = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "_HANDLER": "app.handler",
        "FUNCTION_ONLY": "yes",
    }
    before = time.monotonic()

    runtime = started.adopt(command=COMMAND, environ=environ, cwd=str(tmp_path), version="3.11")

    assert runtime is started.runtime and runtime.started_at >= before
    assert runtime.channel is not None
    assert runtime.channel.recv(HEAD.size) == HEAD.pack(b"n", 0, 0)  # handler imported
    assert initial_environ(runtime.pid) == environ  # what the platform's sweep reads
    assert output(runtime) == f"imported {tmp_path} {tmp_path} yes\n".encode()
    runtime.kill()
    wait_exit(runtime)
    runtime.channel.close()
    os.close(runtime.output_fd)


@pytest.mark.parametrize(
    ("command", "changes"),
    [
        (config.python_runtime_command("/usr/bin/python3.12"), {}),
        (COMMAND, {"PYTHONPATH": "/elsewhere"}),
        (COMMAND, {"PYTHONWARNINGS": "error"}),
        (COMMAND, {"LANG": "de_DE.UTF-8"}),
        (COMMAND, {"LC_ALL": "C"}),
        (COMMAND, {"BIG": "x" * (prestarted.ROOM_BYTES + 1024)}),
    ],
)
def test_a_runtime_that_would_start_otherwise_is_let_go(
    started: prestarted.PrestartedRuntime, command: list[str], changes: dict[str, str]
) -> None:
    environ = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **changes}

    adopted = started.adopt(command=command, environ=environ, cwd="/", version="3.11")

    assert adopted is None
    assert started.runtime.returncode == 1  # it ended at the end of its channel


def test_a_function_with_user_site_packages_gets_a_runtime_that_adds_them(
    started: prestarted.PrestartedRuntime, tmp_path: Path
) -> None:
    (tmp_path / ".local" / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    environ = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(tmp_path)}

    adopted = started.adopt(command=COMMAND, environ=environ, cwd="/", version="3.11")

    assert adopted is None


def test_the_bootstrap_spells_the_prestart_variable_as_the_agent_does() -> None:
    assert bootstrap.PRESTARTED_VARIABLE == config.PRESTARTED_VARIABLE
