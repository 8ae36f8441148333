"""A hostile function against a root platform (issue 10, item 9), through `kubelambda up`.

Run as root, the platform starts every instance as an unprivileged user of its function's
own: a handler reads none of the platform's files (the admin keys, the state, the other
functions' code and logs), neither the platform's environment nor another function's
agent's, cannot signal that agent nor take its events from its Runtime API; its own code,
a private temporary directory and its environment work. The home sits under a
world-traversable directory here, so only the platform's own permissions keep the
function out.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Platform, create_function, start_platform, stop_platform

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="instances run as users of their own only when the platform runs as root; "
    "run this suite as root to check that isolation",
)

VICTIM_HANDLER = """
import os

def handler(event, context):
    return {"task_root": os.environ["LAMBDA_TASK_ROOT"], "agent": os.getppid(),
            "uid": os.getuid(), "runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"]}
"""

HOSTILE_HANDLER = """
import importlib.util
import os
import socket
import sys
import tempfile

def take_events(address):
    # What a runtime does to get its next event: here against another function's agent.
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as connection:
        try:
            connection.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\n"
                               b"Host: x\\r\\n\\r\\n")
            return "answered" if connection.recv(1024) else "closed"
        except ConnectionResetError:
            return "closed"
        except TimeoutError:
            return "waited"

def attempt(action):
    try:
        action()
    except PermissionError:
        return "PermissionError"
    except Exception as exc:
        return type(exc).__name__
    return "allowed"

def read(path):
    with open(path, "rb") as file:
        file.read(1)

def handler(event, context):
    home = event["home"]
    targets = {name: os.path.join(home, name) for name in event["home_files"]}
    targets["instance.key"] = os.path.join(home, "instance.key")
    targets["other function's code"] = event["other_code"]
    targets["platform's environ"] = f"/proc/{event['platform_pid']}/environ"
    targets["other agent's environ"] = f"/proc/{event['other_agent']}/environ"
    tried = {name: attempt(lambda path=path: read(path)) for name, path in targets.items()}
    tried["listing the home"] = attempt(lambda: os.listdir(home))
    tried["signalling the other agent"] = attempt(lambda: os.kill(event["other_agent"], 0))
    runtime_api = take_events(event["other_runtime_api"])

    with open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "app.py")) as source:
        own_code = "def handler" in source.read()
    with tempfile.NamedTemporaryFile() as scratch:
        scratch.write(b"scratch")
        scratch.flush()
        scratch.seek(0)
        tmp_works = scratch.read() == b"scratch"
    tmp = tempfile.gettempdir()
    platform_packages = ("kubelambda", "kubelambda_agent", "gateway", "fastapi", "aiokafka")
    return {
        "tried": tried,
        "runtime_api": runtime_api,
        "platform_packages": [name for name in platform_packages if importlib.util.find_spec(name)],
        "in_a_venv": sys.prefix != sys.base_prefix,
        "own_code": own_code,
        "tmp": tmp,
        "tmp_works": tmp_works,
        "tmp_mode": oct(os.stat(tmp).st_mode & 0o777),
        "tmp_owned": os.stat(tmp).st_uid == os.getuid(),
        "home_env": os.environ.get("HOME"),
        "function_name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
    }
"""


@pytest.fixture
def home() -> Iterator[Path]:
    # Not under pytest's tmp directory (0700): the home's own permissions must hold alone.
    parent = Path(tempfile.mkdtemp(prefix="kubelambda-isolation-"))
    parent.chmod(0o755)
    yield parent / "home"
    shutil.rmtree(parent, ignore_errors=True)


def invoke(client: Any, name: str, event: object) -> Any:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    body = response["Payload"].read()
    assert "FunctionError" not in response, body
    return json.loads(body)


def attack(platform: Platform) -> tuple[dict[str, Any], dict[str, Any]]:
    client = platform.lambda_client()
    create_function(client, "victim", VICTIM_HANDLER)
    create_function(client, "hostile", HOSTILE_HANDLER)
    victim = invoke(client, "victim", {})
    home_files = sorted(
        str(path.relative_to(platform.home)) for path in platform.home.rglob("*") if path.is_file()
    )
    hostile = invoke(
        client,
        "hostile",
        {
            "home": str(platform.home),
            "home_files": home_files,
            "other_code": os.path.join(victim["task_root"], "app.py"),
            "platform_pid": platform.process.pid,
            "other_agent": victim["agent"],
            "other_runtime_api": victim["runtime_api"],
        },
    )
    return victim, hostile


def test_a_function_reaches_nothing_of_the_platform_or_of_other_functions(home: Path) -> None:
    platform = start_platform(home)
    try:
        victim, hostile = attack(platform)
    finally:
        stop_platform(platform.process)

    tried = hostile["tried"]
    assert {"credentials.json", "state.db"} <= set(tried)
    assert any(name.startswith("logs/victim/") for name in tried)
    assert {name: outcome for name, outcome in tried.items() if outcome != "PermissionError"} == {}
    # Another function's Runtime API hangs up on it rather than hand it the next event.
    assert hostile["runtime_api"] == "closed"
    # Its interpreter is not the platform's venv: none of the platform's code is importable.
    assert (hostile["platform_packages"], hostile["in_a_venv"]) == ([], False)
    assert 0 not in (victim["uid"], hostile["uid"], hostile["gid"])
    assert victim["uid"] != hostile["uid"]
    assert set(hostile["groups"]) <= {hostile["gid"]}


def test_a_function_has_its_own_code_a_private_tmp_and_its_environment(home: Path) -> None:
    platform = start_platform(home)
    try:
        _, hostile = attack(platform)
    finally:
        stop_platform(platform.process)

    assert hostile["own_code"] and hostile["tmp_works"]
    assert hostile["function_name"] == "hostile"
    assert (hostile["tmp_mode"], hostile["tmp_owned"]) == ("0o700", True)
    assert hostile["tmp"] != tempfile.gettempdir()
    assert hostile["home_env"] == hostile["tmp"]
    # The private directory goes with its instance (here: with the platform).
    assert not os.path.exists(hostile["tmp"])


def test_instances_die_with_a_platform_killed_outright_and_a_restart_cleans_up(
    home: Path,
) -> None:
    platform = start_platform(home)
    victim, hostile = attack(platform)
    platform.process.send_signal(signal.SIGKILL)
    platform.process.wait()

    # The parent-death signal survives the switch to the function's user.
    deadline = time.monotonic() + 5
    while alive(victim["agent"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(victim["agent"])
    # start_platform waits for this file; the dead run's would pass for the new one's.
    (home / "gateway.url").unlink()
    stop_platform(start_platform(home).process)
    assert not os.path.exists(hostile["tmp"])


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that is not us to collect it is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
