"""LocalCodeStore beyond the port's contract (tests/integration/code_store_contract): the
files it writes, the path ``location`` answers, and collection by modification time."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from pathlib import Path

import pytest

from kubelambda.store import LocalCodeStore

DATA = b"PK\x05\x06" + bytes(18)  # an empty zip: the store does not look inside


@pytest.fixture
def code(tmp_path: Path) -> LocalCodeStore:
    return LocalCodeStore(tmp_path / "code")


def zip_path(code: LocalCodeStore, sha256_hex: str) -> Path:
    return code.root / "zips" / f"{sha256_hex}.zip"


async def read_all(code: LocalCodeStore, sha256_hex: str) -> bytes:
    return b"".join([chunk async for chunk in code.open(sha256_hex)])


async def test_put_names_the_zip_by_its_digest(code):
    package = await code.put(DATA)
    assert (package.sha256_hex, package.size) == (hashlib.sha256(DATA).hexdigest(), len(DATA))
    assert package.code_sha256 == base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    assert zip_path(code, package.sha256_hex).read_bytes() == DATA


async def test_put_leaves_no_partial_file(code):
    await code.put(DATA)
    assert [path.suffix for path in (code.root / "zips").iterdir()] == [".zip"]


async def test_location_is_the_absolute_path_of_the_zip(code):
    package = await code.put(DATA)
    location = Path(await code.location(package.sha256_hex))
    assert location.is_absolute()
    assert location == zip_path(code, package.sha256_hex).absolute()
    assert await asyncio.to_thread(location.read_bytes) == DATA


@pytest.mark.parametrize(
    ("kept", "age", "collected"),
    [(False, 7200, True), (True, 7200, False), (False, 10, False)],
)
async def test_collect_removes_only_unreferenced_packages_past_the_grace(
    code, kept, age, collected
):
    package = await code.put(DATA)
    path = zip_path(code, package.sha256_hex)
    now = path.stat().st_mtime + age
    keep = {package.sha256_hex} if kept else set()
    removed = await code.collect(keep, now=now, grace_seconds=3600)
    assert removed == ([package.sha256_hex] if collected else [])
    assert path.exists() is not collected


async def test_an_identical_upload_renews_the_grace(code):
    package = await code.put(DATA)
    path = zip_path(code, package.sha256_hex)
    old = path.stat().st_mtime - 7200
    os.utime(path, (old, old))
    assert await code.put(DATA) == package
    assert await code.collect(set(), now=old + 7200, grace_seconds=3600) == []
    assert path.exists()


async def test_collect_removes_a_stale_partial_upload_without_reporting_it(code):
    await code.put(DATA)
    partial = code.root / "zips" / ".left-by-a-crash.partial"
    partial.write_bytes(b"PK")
    old = partial.stat().st_mtime - 7200
    os.utime(partial, (old, old))
    package_digests = {path.stem for path in (code.root / "zips").glob("*.zip")}
    assert await code.collect(package_digests, now=old + 7200, grace_seconds=3600) == []
    assert not partial.exists()
