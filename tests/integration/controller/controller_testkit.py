"""What the controller's integration tests share besides fixtures: the test handler, the
region the backend is given, a zip builder, the first answer of a started instance, a
catalog the test publishes, and counts of agents and runtimes among processes."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import httpx

from controller.backends.local import LocalProcessBackend
from kubelambda.models import FunctionVersion
from kubelambda.ports.catalog import Catalog
from kubelambda.ports.endpoints import Endpoint
from tests.process_table import command_line, is_runtime_zygote

__all__ = [
    "HANDLER",
    "REGION",
    "Invoke",
    "Published",
    "Until",
    "agent_pid",
    "agent_pids",
    "agents",
    "alive",
    "first_answer",
    "live_children",
    "make_zip",
    "parent_of",
    "runtimes",
    "zip_with_entry",
    "zygote_pids",
]

# The conftest fixtures of the same names.
Until = Callable[..., Awaitable[None]]
Invoke = Callable[[Endpoint, dict[str, object]], Coroutine[Any, Any, httpx.Response]]

# Not us-east-1 (a default elsewhere), so a test sees which region reached the function.
REGION = "eu-west-1"

HANDLER = """
import os
import time

INIT_SLEEP = float(os.environ.get("INIT_SLEEP", "0"))
time.sleep(INIT_SLEEP)


def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit"):
        os._exit(3)
    for _ in range(event.get("print_mib", 0) * 1024):
        print("x" * 1023)
    return {
        "function": context.function_name,
        "version": context.function_version,
        "initialization_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"],
        "pid": os.getpid(),
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "module": __file__,
        "region": os.environ["AWS_REGION"],
    }
"""


def make_zip(files: Mapping[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def zip_with_entry(name: str, content: bytes = b"x", *, symlink: bool = False) -> bytes:
    """The test handler plus one entry named ``name`` as given (zipfile does not clean it
    up when writing), a symlink to ``content`` when ``symlink``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER)
        entry = zipfile.ZipInfo(name)
        if symlink:
            entry.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(entry, content)
    return buffer.getvalue()


async def first_answer(
    backend: LocalProcessBackend,
    version: FunctionVersion,
    until: Until,
    invoke: Invoke,
    event: dict[str, object] | None = None,
) -> tuple[Endpoint, dict[str, Any]]:
    """Start one instance of ``version`` and invoke it once with ``event``: its endpoint
    and the (successful) answer's JSON."""
    await backend.scale(version, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(version.target)))
    [endpoint] = backend.endpoints(version.target)
    answer = await invoke(endpoint, event or {})
    assert answer.status_code == 200, answer.text
    return endpoint, answer.json()


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


class Published:
    """The store's catalog as the backend follows it: snapshots published by the test."""

    def __init__(self, catalog: Catalog) -> None:
        self.current = catalog
        self.listeners: list[Callable[[Catalog], None]] = []

    async def catalog(self) -> Catalog:
        return self.current

    def subscribe(self, listener: Callable[[Catalog], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        listener(self.current)
        return lambda: self.listeners.remove(listener)

    def publish(self, catalog: Catalog) -> None:
        self.current = catalog
        for listener in list(self.listeners):
            listener(catalog)


def running(pids: list[int], command_part: bytes) -> int:
    """How many of ``pids`` have ``command_part`` in their command line."""
    return sum(command_part in command_line(pid) for pid in pids)


def agents(pids: list[int]) -> int:
    """How many of ``pids`` are agents (each instance has one, and runtimes below it)."""
    return running(pids, b"agent_shim")


def runtimes(pids: list[int]) -> int:
    """How many of ``pids`` are runtimes (an instance starts one, and up to one per unit of
    concurrency as invocations need them), not counting an agent's runtime zygote."""
    return sum(
        b"python_bootstrap" in command_line(pid) and not is_runtime_zygote(pid) for pid in pids
    )


def agent_pids() -> list[int]:
    """Live agents this test process started (spare agents included): its children, or,
    for agents forked by its zygote (``agent_zygote``), the zygote's children."""
    agents = []
    zygotes = zygote_pids()
    for child in live_children(os.getpid()):
        agents.extend(live_children(child) if child in zygotes else [child])
    return agents


def zygote_pids() -> list[int]:
    """This test process's children that fork agents (``agent_shim --zygote``)."""
    return [
        child for child in live_children(os.getpid()) if command_line(child).endswith(b"--zygote\0")
    ]


def live_children(pid: int) -> list[int]:
    children = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        state, parent = stat.rpartition(")")[2].split()[:2]
        if int(parent) == pid and state != "Z":
            children.append(int(proc.name))
    return children


def parent_of(pid: int) -> int:
    """The parent of process ``pid``, from ``/proc``."""
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def agent_pid(pids: list[int]) -> int:
    """The one agent among ``pids`` (spawned or forked, it runs the shim)."""
    agents = [p for p in pids if b"agent_shim" in command_line(p)]
    assert len(agents) == 1, agents
    return agents[0]
