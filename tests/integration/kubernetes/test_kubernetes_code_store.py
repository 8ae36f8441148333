"""The Kubernetes code store against the real apiserver: packages as chunk Secrets and a
manifest, shared by replicas (two stores on two clients), checked when read, collected.

The port's contract, shared with the local store, is in tests/integration/code_store_contract.
Each test reads what the store wrote with the sync client, and alters it behind the
store's back the way an operator or a lost write would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from kubelambda.kubernetes import code_secrets, connection
from kubelambda.kubernetes.code_store import DEFAULT_CACHE_BYTES, KubernetesCodeStore
from kubelambda.models import CodePackage
from kubelambda.ports.code import PackageCorrupt, PackageMissing
from tests.integration.kube_fixtures import NAMESPACE_PREFIX

pytestmark = pytest.mark.infra

CHUNK = code_secrets.CHUNK_BYTES
GRACE = 3600.0
T0 = 1_000_000.0


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def core(kubeconfig: Path) -> Iterator[client.CoreV1Api]:
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        yield client.CoreV1Api(api)


def create_namespace(core: client.CoreV1Api) -> str:
    name = f"{NAMESPACE_PREFIX}codestore-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


@pytest.fixture(scope="module")
def shared_namespace(core: client.CoreV1Api) -> Iterator[str]:
    """One namespace for the tests that only put and read (collection spares what
    their real clocks stamped)."""
    name = create_namespace(core)
    yield name
    core.delete_namespace(name)


@pytest.fixture
def own_namespace(core: client.CoreV1Api) -> Iterator[str]:
    """A namespace of its own, for a test that collects."""
    name = create_namespace(core)
    yield name
    core.delete_namespace(name)


StoreFactory = Callable[..., KubernetesCodeStore]


@pytest.fixture
async def stores(kubeconfig: Path) -> AsyncIterator[StoreFactory]:
    """Stores as two replicas have them: one after the other on two apiserver clients."""
    async with (
        connection.connected(str(kubeconfig)) as first,
        connection.connected(str(kubeconfig)) as second,
    ):
        clients = itertools.cycle((first, second))

        def make(
            namespace: str,
            *,
            cache_bytes: int = DEFAULT_CACHE_BYTES,
            clock: Callable[[], float] = time.time,
        ) -> KubernetesCodeStore:
            return KubernetesCodeStore(
                next(clients), namespace=namespace, cache_bytes=cache_bytes, clock=clock
            )

        yield make


async def read_all(code: KubernetesCodeStore, sha256_hex: str) -> bytes:
    return b"".join([piece async for piece in code.open(sha256_hex)])


def chunk_names(core: client.CoreV1Api, namespace: str, sha256_hex: str) -> list[str]:
    """The package's chunk Secrets, in order."""
    prefix = code_secrets.package_name(sha256_hex) + "-"
    secrets = core.list_namespaced_secret(namespace, label_selector=code_secrets.CHUNK_SELECTOR)
    names = [s.metadata.name for s in secrets.items if s.metadata.name.startswith(prefix)]
    return sorted(names, key=lambda name: int(name.removeprefix(prefix)))


def package_names(core: client.CoreV1Api, namespace: str) -> list[str]:
    secrets = core.list_namespaced_secret(namespace, label_selector=code_secrets.PACKAGE_SELECTOR)
    return sorted(s.metadata.name for s in secrets.items)


def replace_chunk(core: client.CoreV1Api, namespace: str, name: str, data: bytes) -> None:
    """Put other bytes under a chunk's name, as its owner's (chunks are immutable)."""
    old = core.read_namespaced_secret(name, namespace)
    delete_secret(core, namespace, name)
    old.metadata = client.V1ObjectMeta(
        name=name,
        labels=old.metadata.labels,
        annotations=old.metadata.annotations,
        owner_references=old.metadata.owner_references,
    )
    old.data = {"chunk": base64.b64encode(data).decode()}
    core.create_namespaced_secret(namespace, old)


def delete_secret(core: client.CoreV1Api, namespace: str, name: str) -> None:
    core.delete_namespaced_secret(name, namespace)


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK, CHUNK + 1, 5_000_000], ids=["empty", "1B", "chunk", "chunk+1", "5MB"]
)
async def test_a_put_package_reads_back_from_another_replica(stores, core, shared_namespace, size):
    writer = stores(shared_namespace)
    reader = stores(shared_namespace, cache_bytes=0)
    data = os.urandom(size)
    package = await writer.put(data)
    assert package == CodePackage(hashlib.sha256(data).hexdigest(), size)
    assert await read_all(reader, package.sha256_hex) == data
    assert len(chunk_names(core, shared_namespace, package.sha256_hex)) == -(-size // CHUNK)
    location = await reader.location(package.sha256_hex)
    assert (
        location
        == f"kubernetes://{shared_namespace}/{code_secrets.package_name(package.sha256_hex)}"
    )


async def test_identical_puts_from_two_replicas_converge(stores, core, shared_namespace):
    first, second = stores(shared_namespace), stores(shared_namespace)
    data = os.urandom(3 * CHUNK + 17)
    packages = await asyncio.gather(first.put(data), second.put(data), first.put(data))
    assert len(set(packages)) == 1
    digest = packages[0].sha256_hex
    assert len(chunk_names(core, shared_namespace, digest)) == 4
    assert code_secrets.package_name(digest) in package_names(core, shared_namespace)
    assert await read_all(first, digest) == await read_all(second, digest) == data


async def test_concurrent_opens_serve_the_same_bytes(stores, shared_namespace):
    code = stores(shared_namespace)
    data = os.urandom(2 * CHUNK)
    package = await code.put(data)
    read = await asyncio.gather(*(read_all(code, package.sha256_hex) for _ in range(5)))
    assert read == [data] * 5


async def test_open_and_location_of_an_unknown_digest_raise_package_missing(
    stores, shared_namespace
):
    code = stores(shared_namespace)
    with pytest.raises(PackageMissing):
        await read_all(code, "0" * 64)
    with pytest.raises(PackageMissing):
        await code.location("0" * 64)
    with pytest.raises(PackageMissing):
        await code.location("../secrets")


@pytest.mark.parametrize("cache_bytes", [0, 64 << 20], ids=["streamed", "cached"])
async def test_a_deleted_chunk_fails_the_read_without_wrong_bytes(
    stores, core, shared_namespace, cache_bytes
):
    code = stores(shared_namespace, cache_bytes=cache_bytes)
    data = os.urandom(3 * CHUNK)
    package = await code.put(data)
    second = chunk_names(core, shared_namespace, package.sha256_hex)[1]
    delete_secret(core, shared_namespace, second)
    served = bytearray()
    with pytest.raises(PackageCorrupt):
        async for piece in code.open(package.sha256_hex):
            served += piece
    assert len(served) < len(data) and data.startswith(served)
    # Taken back to unfinished: gone until put again, which repairs it.
    with pytest.raises(PackageMissing):
        await code.location(package.sha256_hex)
    assert await code.put(data) == package
    assert await read_all(code, package.sha256_hex) == data


async def test_chunks_and_manifest_altered_alike_fail_before_the_last_byte(
    stores, core, shared_namespace
):
    code = stores(shared_namespace, cache_bytes=0)
    data = os.urandom(2 * CHUNK)
    package = await code.put(data)
    names = chunk_names(core, shared_namespace, package.sha256_hex)
    forged = bytes(CHUNK)
    replace_chunk(core, shared_namespace, names[1], forged)
    listed = [hashlib.sha256(data[:CHUNK]).hexdigest(), hashlib.sha256(forged).hexdigest()]
    core.patch_namespaced_secret(
        code_secrets.package_name(package.sha256_hex),
        shared_namespace,
        {"metadata": {"annotations": {"kubelambda.io/code-chunk-sha256": ",".join(listed)}}},
    )
    served = bytearray()
    with pytest.raises(PackageCorrupt):
        async for piece in code.open(package.sha256_hex):
            served += piece
    assert bytes(served) == data[:CHUNK]


@pytest.mark.parametrize("index", [0, 2], ids=["first", "last"])
async def test_a_corrupted_chunk_fails_the_read_without_wrong_bytes(
    stores, core, shared_namespace, index
):
    code = stores(shared_namespace, cache_bytes=0)
    data = os.urandom(2 * CHUNK + 5)
    package = await code.put(data)
    name = chunk_names(core, shared_namespace, package.sha256_hex)[index]
    original = data[index * CHUNK : (index + 1) * CHUNK]
    replace_chunk(core, shared_namespace, name, bytes(len(original)))
    served = bytearray()
    with pytest.raises(PackageCorrupt):
        async for piece in code.open(package.sha256_hex):
            served += piece
    assert data.startswith(served) and len(served) == index * CHUNK
    await code.put(data)
    assert await read_all(code, package.sha256_hex) == data


async def test_a_cached_package_is_served_while_it_is_stored(stores, core, shared_namespace):
    code = stores(shared_namespace)
    data = os.urandom(CHUNK + 1)
    package = await code.put(data)
    assert await read_all(code, package.sha256_hex) == data
    for name in chunk_names(core, shared_namespace, package.sha256_hex):
        delete_secret(core, shared_namespace, name)
    assert await read_all(code, package.sha256_hex) == data
    delete_secret(core, shared_namespace, code_secrets.package_name(package.sha256_hex))
    with pytest.raises(PackageMissing):
        await read_all(code, package.sha256_hex)


async def test_collect_removes_old_unkept_packages_and_their_chunks(stores, core, own_namespace):
    clock = Clock()
    code = stores(own_namespace, clock=clock)
    kept, old = await code.put(os.urandom(CHUNK + 1)), await code.put(os.urandom(CHUNK + 1))
    renewed = await code.put(b"renewed")
    clock.now = T0 + GRACE - 10
    recent = await code.put(b"recent")
    assert await code.put(b"renewed") == renewed
    removed = await code.collect({kept.sha256_hex}, now=T0 + GRACE + 1, grace_seconds=GRACE)
    assert removed == [old.sha256_hex]
    assert chunk_names(core, own_namespace, old.sha256_hex) == []
    with pytest.raises(PackageMissing):
        await code.location(old.sha256_hex)
    for package in (kept, renewed, recent):
        await code.location(package.sha256_hex)
    assert len(chunk_names(core, own_namespace, kept.sha256_hex)) == 2


async def test_collect_removes_an_abandoned_put_and_orphan_chunks_unreported(
    stores, core, own_namespace
):
    code = stores(own_namespace, clock=Clock())
    data = os.urandom(2 * CHUNK)
    package = await code.put(data)
    # A put that stopped before marking its manifest complete.
    manifest = code_secrets.package_name(package.sha256_hex)
    core.patch_namespaced_secret(
        manifest,
        own_namespace,
        {"metadata": {"annotations": {"kubelambda.io/code-state": "writing"}}},
    )
    # A chunk whose manifest is gone, as a collection interrupted half-way leaves one.
    orphan = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name="kubelambda-code-orphan-0",
            labels=core.read_namespaced_secret(
                chunk_names(core, own_namespace, package.sha256_hex)[0], own_namespace
            ).metadata.labels,
        ),
        type=code_secrets.CHUNK_TYPE,
        data={"chunk": ""},
    )
    core.create_namespaced_secret(own_namespace, orphan)
    with pytest.raises(PackageMissing):
        await code.location(package.sha256_hex)
    assert await code.collect(set(), now=T0 + GRACE, grace_seconds=GRACE) == []
    assert package_names(core, own_namespace) == []
    remaining = core.list_namespaced_secret(
        own_namespace, label_selector=code_secrets.CHUNK_SELECTOR
    ).items
    # The orphan was made now, not in the store's past: it waits out the grace.
    assert [s.metadata.name for s in remaining] == ["kubelambda-code-orphan-0"]
    created = remaining[0].metadata.creation_timestamp.timestamp()
    later = await code.collect(set(), now=created + GRACE + 1, grace_seconds=GRACE)
    assert later == []
    assert (
        core.list_namespaced_secret(own_namespace, label_selector=code_secrets.CHUNK_SELECTOR).items
        == []
    )
