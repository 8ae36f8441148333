"""LocalCodeStore: zips stored once by digest, streamed back, located, and collected."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from pathlib import Path

import pytest

from kubelambda.ports.code import PackageMissing
from kubelambda.store import LocalCodeStore

DATA = b"PK\x05\x06" + bytes(18)  # an empty zip: the store does not look inside
MISSING = "0" * 64


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


async def test_open_streams_the_stored_bytes_in_chunks(code):
    data = os.urandom(3 * 1024 * 1024 + 5)
    package = await code.put(data)
    chunks = [chunk async for chunk in code.open(package.sha256_hex)]
    assert len(chunks) > 1
    assert b"".join(chunks) == data


async def test_open_of_a_missing_package_raises_on_first_iteration(code):
    chunks = code.open(MISSING)
    with pytest.raises(PackageMissing):
        await anext(chunks)


async def test_location_is_the_absolute_path_of_the_zip(code):
    package = await code.put(DATA)
    location = Path(await code.location(package.sha256_hex))
    assert location.is_absolute()
    assert location == zip_path(code, package.sha256_hex).absolute()
    assert await asyncio.to_thread(location.read_bytes) == DATA


async def test_location_of_a_missing_package_raises(code):
    with pytest.raises(PackageMissing):
        await code.location(MISSING)


@pytest.mark.parametrize("digest", ["../../etc/passwd", "ABC", "0" * 63, "0" * 64 + "/x"])
async def test_a_name_that_is_not_a_digest_names_no_package(code, digest):
    with pytest.raises(PackageMissing):
        await code.location(digest)
    with pytest.raises(PackageMissing):
        await read_all(code, digest)


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


async def test_collect_on_an_empty_store_removes_nothing(code):
    assert await code.collect(set(), now=0.0, grace_seconds=0.0) == []
