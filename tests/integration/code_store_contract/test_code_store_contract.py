"""The ``CodeStore`` port's contract, met alike by every adapter: zips stored once by
digest, streamed back, located, and collected when unused past the grace.

What only one adapter does (file layout and partial uploads; Secrets, replicas and
corruption) is in tests/unit/store/test_code_store.py and
tests/integration/kubernetes/test_kubernetes_code_store.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time

import pytest

from kubelambda.ports.code import PackageMissing

DATA = b"PK\x05\x06" + bytes(18)  # an empty zip: stores do not look inside
MISSING = "0" * 64
GRACE = 3600.0


async def read_all(code, sha256_hex):
    return b"".join([chunk async for chunk in code.open(sha256_hex)])


async def test_put_names_the_package_by_its_digest(code):
    package = await code.put(DATA)
    assert (package.sha256_hex, package.size) == (hashlib.sha256(DATA).hexdigest(), len(DATA))
    assert package.code_sha256 == base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    assert await read_all(code, package.sha256_hex) == DATA


async def test_open_streams_the_stored_bytes_in_chunks(code):
    data = os.urandom(3 * 1024 * 1024 + 5)
    package = await code.put(data)
    chunks = [chunk async for chunk in code.open(package.sha256_hex)]
    assert len(chunks) > 1
    assert b"".join(chunks) == data


async def test_an_identical_upload_is_the_same_package(code):
    first = await code.put(DATA)
    assert await code.put(DATA) == first
    assert await read_all(code, first.sha256_hex) == DATA


async def test_open_of_a_missing_package_raises_on_first_iteration(code):
    chunks = code.open(MISSING)
    with pytest.raises(PackageMissing):
        await anext(chunks)


async def test_location_answers_for_a_stored_package_only(code):
    package = await code.put(DATA)
    assert await code.location(package.sha256_hex)
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
    [(False, 2 * GRACE, True), (True, 2 * GRACE, False), (False, 10, False)],
    ids=["unkept-old", "kept-old", "unkept-recent"],
)
async def test_collect_removes_only_unreferenced_packages_past_the_grace(
    code, kept, age, collected
):
    package = await code.put(DATA)
    keep = {package.sha256_hex} if kept else set()
    removed = await code.collect(keep, now=time.time() + age, grace_seconds=GRACE)
    assert removed == ([package.sha256_hex] if collected else [])
    if collected:
        with pytest.raises(PackageMissing):
            await code.location(package.sha256_hex)
        with pytest.raises(PackageMissing):
            await read_all(code, package.sha256_hex)
    else:
        assert await read_all(code, package.sha256_hex) == DATA


async def test_collect_on_an_empty_store_removes_nothing(code):
    assert await code.collect(set(), now=time.time(), grace_seconds=0.0) == []
