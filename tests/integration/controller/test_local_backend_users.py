"""LocalProcessBackend with ``users``, as a root platform runs it: real agents that switch
to their function's user, real runtimes, code from a real LocalCodeStore."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from controller_testkit import Invoke, Until, alive, first_answer, make_zip, parent_of

from controller.backends import local_files, local_users
from controller.backends.local import LocalProcessBackend
from kubelambda.models import FunctionVersion, frozen_mapping
from kubelambda.store import LocalCodeStore

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root can run instances as other users; run as root"
)

BASE = 1_500_000_000

HANDLER = """
import os
import subprocess
import tempfile
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    if event.get("orphan"):
        # sh exits at once: its sleep is re-parented to the agent, the subreaper.
        shell = subprocess.run(["/bin/sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"],
                               capture_output=True, text=True, start_new_session=True)
        return {"orphan": int(shell.stdout)}
    for _ in range(event.get("print_mib", 0) * 1024):
        print("x" * 1023)
    home = os.environ["KUBELAMBDA_TEST_HOME"]
    try:
        os.listdir(home)
        home_closed = False
    except PermissionError:
        home_closed = True
    with open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "app.py")) as source:
        reads_its_code = "def handler" in source.read()
    try:
        open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "new.py"), "w").close()
        code_writable = True
    except PermissionError:
        code_writable = False
    tmp = tempfile.gettempdir()
    return {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
            "tmp": tmp, "tmp_mode": os.stat(tmp).st_mode & 0o777, "home": os.environ["HOME"],
            "task_root": os.environ["LAMBDA_TASK_ROOT"], "agent": os.getppid(),
            "runtime_dir": os.environ["LAMBDA_RUNTIME_DIR"],
            "home_closed": home_closed, "reads_its_code": reads_its_code,
            "code_writable": code_writable}
"""

MakeVersion = Callable[..., FunctionVersion]
NewBackend = Callable[..., LocalProcessBackend]
PidsOf = Callable[[str], list[int]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
async def version_of(
    code_store: LocalCodeStore, make_version: MakeVersion, home: Path
) -> Callable[..., Awaitable[FunctionVersion]]:
    package = await code_store.put(make_zip({"app.py": HANDLER}))

    async def make(**changes: object) -> FunctionVersion:
        return make_version(
            code_sha256=package.code_sha256,
            code_size=package.size,
            environment=frozen_mapping({"KUBELAMBDA_TEST_HOME": str(home)}),
            **changes,
        )

    return make


@pytest.fixture
def users_backend(new_backend: NewBackend) -> LocalProcessBackend:
    return new_backend(users=local_users.InstanceUsers(BASE), ready_timeout=20.0)


def owner_and_mode(path: str | Path) -> tuple[int, int, int]:
    status = Path(path).stat()
    return status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)


def exists(path: str | Path) -> bool:
    return Path(path).exists()


def listing(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


async def test_each_function_runs_as_a_user_of_its_own_in_no_other_group(
    users_backend: LocalProcessBackend,
    version_of: Callable[..., Awaitable[FunctionVersion]],
    function_name: str,
    until: Until,
    invoke: Invoke,
) -> None:
    users = local_users.InstanceUsers(BASE)
    first = await version_of()
    second = await version_of(name=f"{function_name}-b")

    _, one = await first_answer(users_backend, first, until, invoke)
    _, other = await first_answer(users_backend, second, until, invoke)

    assert one["uid"] == users.user_for(first.namespace, first.function_name).uid
    assert other["uid"] == users.user_for(second.namespace, second.function_name).uid
    assert one["uid"] != other["uid"]
    for seen in (one, other):
        assert BASE < seen["uid"] < BASE + local_users.COUNT
        assert seen["gid"] == seen["uid"]
        assert set(seen["groups"]) <= {seen["gid"]}


async def test_an_instance_reads_its_code_but_not_the_home_and_cannot_change_its_code(
    users_backend: LocalProcessBackend,
    version_of: Callable[..., Awaitable[FunctionVersion]],
    until: Until,
    invoke: Invoke,
    home: Path,
) -> None:
    _, seen = await first_answer(users_backend, await version_of(), until, invoke)
    root = local_files.recorded(home)

    assert seen["reads_its_code"] and seen["home_closed"]
    assert not seen["code_writable"]
    assert root is not None
    # Its code, and the bootstrap that runs it, are copies outside the closed home.
    assert Path(seen["task_root"]).is_relative_to(root)
    assert Path(seen["runtime_dir"]) == root / "runtime"
    assert owner_and_mode(seen["task_root"]) == (0, seen["gid"], 0o550)


async def test_preparing_copies_the_code_for_the_functions_user_before_any_start(
    users_backend: LocalProcessBackend,
    version_of: Callable[..., Awaitable[FunctionVersion]],
    until: Until,
    invoke: Invoke,
    home: Path,
) -> None:
    version = await version_of()

    await users_backend.prepare(version.running_package, function=version.target.function)
    root = local_files.recorded(home)
    assert root is not None
    [copy] = listing(root / "code")
    _, seen = await first_answer(users_backend, version, until, invoke)

    # The first start runs the copy made while the version was Pending, not a new one.
    assert Path(seen["task_root"]) == copy
    assert listing(root / "code") == [copy]
    assert owner_and_mode(copy) == (0, seen["gid"], 0o550)


async def test_the_private_tmp_goes_with_its_instance(
    users_backend: LocalProcessBackend,
    version_of: Callable[..., Awaitable[FunctionVersion]],
    until: Until,
    invoke: Invoke,
    pids_of: PidsOf,
) -> None:
    version = await version_of()
    _, seen = await first_answer(users_backend, version, until, invoke)
    tmp = seen["tmp"]
    assert seen["home"] == tmp
    assert owner_and_mode(tmp) == (seen["uid"], seen["gid"], 0o700)

    await users_backend.scale(version, replicas=0, concurrency=1)
    await until(lambda: not pids_of(version.function_name))
    await until(lambda: not exists(tmp))


async def test_environments_hosted_by_one_agent_have_a_private_tmp_each(
    users_backend: LocalProcessBackend,
    version_of: Callable[..., Awaitable[FunctionVersion]],
    until: Until,
    invoke: Invoke,
) -> None:
    version = await version_of()
    await users_backend.scale(version, replicas=2, concurrency=1)
    await until(lambda: users_backend.ready_instances(version.target) == 2)
    [endpoint] = users_backend.endpoints(version.target)

    answers = [
        r.json() for r in await asyncio.gather(*(invoke(endpoint, {"sleep": 0.3}) for _ in "ab"))
    ]

    assert answers[0]["agent"] == answers[1]["agent"]
    tmps = {Path(a["tmp"]) for a in answers}
    assert len(tmps) == 2
    # Side by side in the instance's private directory, each its user's alone.
    assert len({tmp.parent for tmp in tmps}) == 1
    for seen in answers:
        assert seen["home"] == seen["tmp"]
        assert owner_and_mode(seen["tmp"]) == (seen["uid"], seen["gid"], 0o700)


async def test_what_a_function_abandons_dies_with_its_agent_across_the_user_switch(
    users_backend: LocalProcessBackend,
    version_of: Callable[..., Awaitable[FunctionVersion]],
    until: Until,
    invoke: Invoke,
    pids_of: PidsOf,
) -> None:
    version = await version_of()
    endpoint, seen = await first_answer(users_backend, version, until, invoke)
    orphan = (await invoke(endpoint, {"orphan": True})).json()["orphan"]
    assert parent_of(orphan) == seen["agent"]  # adopted by the agent, the subreaper

    await users_backend.scale(version, replicas=0, concurrency=1)
    await until(lambda: not pids_of(version.function_name))
    await until(lambda: not alive(orphan))


async def test_the_log_is_written_and_rotated_as_the_functions_user(
    new_backend: NewBackend,
    version_of: Callable[..., Awaitable[FunctionVersion]],
    until: Until,
    invoke: Invoke,
    home: Path,
) -> None:
    bound = 256 * 1024
    backend = new_backend(users=local_users.InstanceUsers(BASE), log_max_bytes=bound)
    version = await version_of()
    endpoint, seen = await first_answer(backend, version, until, invoke)
    for _ in range(2):
        assert (await invoke(endpoint, {"print_mib": 1})).status_code == 200

    directory = home / "logs" / version.function_name / version.version
    files = {p.name: (owner_and_mode(p)[0], p.stat().st_size) for p in listing(directory)}
    assert sorted(files) == [f"{endpoint.instance_id}.log", f"{endpoint.instance_id}.log.1"]
    assert {uid for uid, _ in files.values()} == {seen["uid"]}
    assert all(size <= bound for _, size in files.values())
    assert owner_and_mode(directory) == (0, seen["gid"], 0o770)


async def test_closing_removes_the_instance_files(
    users_backend: LocalProcessBackend,
    version_of: Callable[..., Awaitable[FunctionVersion]],
    until: Until,
    invoke: Invoke,
    home: Path,
) -> None:
    _, seen = await first_answer(users_backend, await version_of(), until, invoke)
    root = local_files.recorded(home)
    assert root is not None and Path(seen["task_root"]).is_relative_to(root)
    assert owner_and_mode(root) == (0, 0, 0o711)

    await users_backend.aclose()

    assert not exists(root)
    assert local_files.recorded(home) is None


async def test_a_restart_reaps_the_instances_and_files_a_killed_run_left(
    users_backend: LocalProcessBackend,
    version_of: Callable[..., Awaitable[FunctionVersion]],
    until: Until,
    invoke: Invoke,
    home: Path,
    pids_of: PidsOf,
) -> None:
    version = await version_of()
    endpoint, _ = await first_answer(users_backend, version, until, invoke)
    orphan = (await invoke(endpoint, {"orphan": True})).json()["orphan"]
    root = local_files.recorded(home)
    assert root is not None

    # As a new platform on the home would, while this one's processes still run.
    await LocalProcessBackend.reap_leftovers(home)

    assert not exists(root)
    await until(lambda: not pids_of(version.function_name) and not alive(orphan))


async def test_discarding_a_package_removes_every_functions_copy(
    users_backend: LocalProcessBackend,
    version_of: Callable[..., Awaitable[FunctionVersion]],
    function_name: str,
    until: Until,
    invoke: Invoke,
) -> None:
    first = await version_of()
    second = await version_of(name=f"{function_name}-b")
    _, one = await first_answer(users_backend, first, until, invoke)
    _, other = await first_answer(users_backend, second, until, invoke)
    assert one["task_root"] != other["task_root"]
    for version in (first, second):
        await users_backend.scale(version, replicas=0, concurrency=1)

    await users_backend.discard([first.running_package.sha256_hex])

    assert not exists(one["task_root"]) and not exists(other["task_root"])
