"""LocalProcessBackend and a real LocalCodeStore: preparing, running from, and discarding
packages (unpacked under ``<home>/code/unpacked/<sha256 hex>``)."""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
from controller_testkit import HANDLER, REGION, Published, make_zip, zip_with_entry

from controller.backends.local import LocalProcessBackend
from kubelambda.models import CodePackage, FunctionKey, FunctionVersion
from kubelambda.ports.catalog import Catalog
from kubelambda.ports.endpoints import Endpoint
from kubelambda.ports.instances import PackageRejected
from kubelambda.store import LocalCodeStore

Until = Callable[[Callable[[], bool]], Awaitable[None]]
Invoke = Callable[[Endpoint, dict[str, object]], Coroutine[Any, Any, httpx.Response]]
MakeVersion = Callable[..., FunctionVersion]
NewBackend = Callable[..., LocalProcessBackend]

# Whose instances a package is prepared for (it matters only when they run as users).
FUNCTION = FunctionKey("default", "packaged")


def unpacked(tmp_path: Path, package: CodePackage) -> Path:
    return tmp_path / "home" / "code" / "unpacked" / package.sha256_hex


def files_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


async def test_a_package_from_the_code_store_is_unpacked_read_only(
    tmp_path: Path, backend: LocalProcessBackend, handler_package: CodePackage
) -> None:
    await backend.prepare(handler_package, function=FUNCTION)
    directory = unpacked(tmp_path, handler_package)

    assert (directory / "app.py").read_text() == HANDLER
    assert stat.S_IMODE(directory.stat().st_mode) & 0o222 == 0
    assert stat.S_IMODE((directory / "app.py").stat().st_mode) & 0o222 == 0


async def test_an_instance_runs_from_the_unpacked_package(
    tmp_path: Path,
    backend: LocalProcessBackend,
    handler_package: CodePackage,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
) -> None:
    version = make_version()
    await backend.prepare(handler_package, function=FUNCTION)

    await backend.scale(version, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(version.target)))
    answer = (await invoke(backend.endpoints(version.target)[0], {})).json()

    directory = unpacked(tmp_path, handler_package)
    assert (answer["task_root"], answer["module"]) == (str(directory), str(directory / "app.py"))
    assert answer["region"] == REGION


async def test_a_start_unpacks_a_package_nobody_prepared(
    tmp_path: Path,
    backend: LocalProcessBackend,
    handler_package: CodePackage,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
) -> None:
    # After a restart with a fresh home, say: the code store still has the zip.
    version = make_version()

    await backend.scale(version, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(version.target)))
    answer = (await invoke(backend.endpoints(version.target)[0], {})).json()

    assert answer["task_root"] == str(unpacked(tmp_path, handler_package))


async def test_an_update_in_progress_still_runs_the_package_it_replaces(
    tmp_path: Path,
    backend: LocalProcessBackend,
    code_store: LocalCodeStore,
    handler_package: CodePackage,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
) -> None:
    newer = await code_store.put(make_zip({"app.py": HANDLER, "extra.txt": "new"}))
    version = make_version(
        version="$LATEST",
        code_sha256=newer.code_sha256,
        code_size=newer.size,
        serving_package=handler_package,
    )

    await backend.scale(version, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(version.target)))
    answer = (await invoke(backend.endpoints(version.target)[0], {})).json()

    assert answer["task_root"] == str(unpacked(tmp_path, handler_package))


@pytest.mark.parametrize(
    ("name", "content", "symlink"),
    [
        ("../escaped.py", b"x", False),
        ("lib/../../escaped.py", b"x", False),
        ("{tmp}/escaped.py", b"x", False),
        ("escaped-link", b"../../../escaped.py", True),
        ("lib/escaped-link", b"{tmp}/escaped.py", True),
    ],
)
async def test_a_zip_escaping_its_directory_is_rejected_and_writes_nothing_outside(
    tmp_path: Path,
    backend: LocalProcessBackend,
    code_store: LocalCodeStore,
    name: str,
    content: bytes,
    symlink: bool,
) -> None:
    package = await code_store.put(
        zip_with_entry(
            name.format(tmp=tmp_path),
            content.replace(b"{tmp}", bytes(tmp_path)),
            symlink=symlink,
        )
    )
    unpack_root = tmp_path / "home" / "code" / "unpacked"
    before = files_under(tmp_path)

    with pytest.raises(PackageRejected, match="outside the package"):
        await backend.prepare(package, function=FUNCTION)

    # Only the (empty) parent of the unpack directories may have appeared.
    assert files_under(tmp_path) - before <= {tmp_path / "home", unpack_root.parent, unpack_root}
    assert list(unpack_root.iterdir()) == []


async def test_a_package_missing_from_the_code_store_is_rejected(
    backend: LocalProcessBackend,
) -> None:
    with pytest.raises(PackageRejected, match="missing"):
        await backend.prepare(CodePackage(sha256_hex="dd" * 32, size=1), function=FUNCTION)


async def test_an_instance_of_a_package_that_cannot_unpack_fails_permanently(
    backend: LocalProcessBackend, code_store: LocalCodeStore, make_version: MakeVersion
) -> None:
    broken = await code_store.put(zip_with_entry("../escaped.py"))
    version = make_version(code_sha256=broken.code_sha256, code_size=broken.size)

    await backend.scale(version, replicas=1, concurrency=1)
    failure = backend.start_failure(version.target)

    assert failure is not None
    assert failure.retriable is False
    assert "outside the package" in failure.reason
    assert backend.endpoints(version.target) == ()


async def test_discard_removes_the_unpacked_directory(
    tmp_path: Path,
    backend: LocalProcessBackend,
    code_store: LocalCodeStore,
    handler_package: CodePackage,
) -> None:
    other = await code_store.put(make_zip({"app.py": HANDLER, "lib/data.txt": "kept"}))
    await backend.prepare(handler_package, function=FUNCTION)
    await backend.prepare(other, function=FUNCTION)

    await backend.discard([handler_package.sha256_hex])

    assert not unpacked(tmp_path, handler_package).exists()
    assert (unpacked(tmp_path, other) / "lib" / "data.txt").read_text() == "kept"


async def test_a_discarded_package_is_unpacked_again_when_prepared_again(
    tmp_path: Path, backend: LocalProcessBackend, handler_package: CodePackage
) -> None:
    await backend.prepare(handler_package, function=FUNCTION)
    await backend.discard([handler_package.sha256_hex])

    await backend.prepare(handler_package, function=FUNCTION)

    assert (unpacked(tmp_path, handler_package) / "app.py").is_file()


async def test_discarding_a_package_never_prepared_is_harmless(
    backend: LocalProcessBackend,
) -> None:
    await backend.discard(["ee" * 32])


@pytest.mark.parametrize("name", ["../escaped.py", "/abs/escaped.py"])
def test_the_zip_helper_keeps_an_escaping_name_as_given(name: str) -> None:
    # The escaping cases above prove something only if the entry is really there.
    with zipfile.ZipFile(io.BytesIO(zip_with_entry(name))) as archive:
        assert archive.namelist() == ["app.py", name]


async def test_once_a_new_package_is_published_no_endpoint_runs_the_old_one(
    backend: LocalProcessBackend,
    code_store: LocalCodeStore,
    make_version: MakeVersion,
    until: Until,
) -> None:
    old = make_version(version="$LATEST")
    catalog = Published(Catalog(versions={old.target: old}))
    stop_following = backend.follow(catalog)
    changed: list[object] = []
    backend.subscribe(changed.append)
    await backend.scale(old, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(old.target)))
    newer = await code_store.put(make_zip({"app.py": HANDLER, "extra.txt": "new"}))
    settled = old.with_changes(code_sha256=newer.code_sha256, code_size=newer.size)
    changed.clear()

    # The update settles: the store publishes it before anyone is told it is Successful.
    catalog.publish(Catalog(versions={old.target: settled}))

    assert backend.endpoints(old.target) == ()
    assert backend.ready_instances(old.target) == 0
    assert changed == [old.target]
    await backend.scale(settled, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(old.target)))
    stop_following()
