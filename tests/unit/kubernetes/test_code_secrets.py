"""The Secrets a code package is stored as: names, chunking, and manifests read back."""

from __future__ import annotations

import base64
import copy
import hashlib

import pytest

from kubelambda.kubernetes import code_secrets
from kubelambda.models import CodePackage

CHUNK = code_secrets.CHUNK_BYTES
SHA = hashlib.sha256(b"zip").hexdigest()
NOW = 1_700_000_000.5


def stored_manifest(data: bytes, *, now: float = NOW) -> dict:
    """A manifest as the apiserver returns it once created."""
    pieces = code_secrets.split(data, CHUNK)
    manifest = code_secrets.package_secret(
        CodePackage(hashlib.sha256(data).hexdigest(), len(data)),
        namespace="ns",
        chunk_bytes=CHUNK,
        chunk_digests=code_secrets.digests(pieces),
        now=now,
    )
    manifest["metadata"] |= {"uid": "u-1", "resourceVersion": "7"}
    return manifest


def test_names_follow_from_the_digest_and_fit_a_dns_label():
    assert code_secrets.package_name(SHA) == f"kubelambda-code-{SHA[:40]}"
    assert code_secrets.chunk_name(SHA, 71) == f"kubelambda-code-{SHA[:40]}-71"
    assert len(code_secrets.chunk_name(SHA, 999)) <= 63


@pytest.mark.parametrize(
    ("size", "lengths"),
    [(0, []), (1, [1]), (CHUNK, [CHUNK]), (CHUNK + 1, [CHUNK, 1]), (2 * CHUNK, [CHUNK, CHUNK])],
)
def test_split_cuts_chunks_of_at_most_chunk_bytes(size, lengths):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    pieces = code_secrets.split(data, CHUNK)
    assert [len(piece) for piece in pieces] == lengths
    assert b"".join(pieces) == data


def test_a_chunk_stays_within_what_a_secret_and_a_request_may_hold():
    chunk = code_secrets.chunk_secret(
        code_secrets.read_package(stored_manifest(b"x")), 0, bytes(CHUNK), namespace="ns"
    )
    assert len(base64.b64decode(chunk["data"]["chunk"])) <= 1024 * 1024
    assert len(chunk["data"]["chunk"]) < 1024 * 1024


@pytest.mark.parametrize("size", [0, 5, CHUNK + 1])
def test_a_manifest_reads_back_as_what_was_stored(size):
    data = bytes(size)
    stored = code_secrets.read_package(stored_manifest(data))
    assert stored == code_secrets.StoredPackage(
        name=code_secrets.package_name(hashlib.sha256(data).hexdigest()),
        uid="u-1",
        resource_version="7",
        sha256_hex=hashlib.sha256(data).hexdigest(),
        size=size,
        chunk_bytes=CHUNK,
        chunk_digests=code_secrets.digests(code_secrets.split(data, CHUNK)),
        complete=False,
        touched=NOW,
    )


def test_complete_and_touch_patches_change_state_and_time():
    manifest = stored_manifest(b"zip")
    stored = code_secrets.read_package(manifest)
    complete = code_secrets.complete_patch(stored, NOW + 5)
    assert complete["metadata"]["uid"] == "u-1"
    manifest["metadata"]["annotations"] |= complete["metadata"]["annotations"]
    done = code_secrets.read_package(manifest)
    assert (done.complete, done.touched) == (True, NOW + 5)
    touch = code_secrets.touch_patch(done, NOW + 9)
    assert touch["metadata"]["resourceVersion"] == "7"
    manifest["metadata"]["annotations"] |= touch["metadata"]["annotations"]
    assert code_secrets.read_package(manifest).touched == NOW + 9
    manifest["metadata"]["annotations"] |= code_secrets.writing_patch(done)["metadata"][
        "annotations"
    ]
    assert not code_secrets.read_package(manifest).complete


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m["metadata"].pop("annotations"),
        lambda m: m["metadata"]["annotations"].update({"kubelambda.io/code-chunks": "3"}),
        lambda m: m["metadata"]["annotations"].update({"kubelambda.io/touched": "yesterday"}),
        lambda m: m["metadata"]["annotations"].update({"kubelambda.io/code-sha256": "0" * 64}),
    ],
    ids=["no-annotations", "chunk-count", "touched", "digest-not-the-name"],
)
def test_a_malformed_manifest_is_refused(damage):
    manifest = copy.deepcopy(stored_manifest(b"zip"))
    damage(manifest)
    with pytest.raises(ValueError):
        code_secrets.read_package(manifest)


def test_a_chunk_names_its_manifest_as_owner_and_holds_its_bytes():
    stored = code_secrets.read_package(stored_manifest(b"zip"))
    chunk = code_secrets.chunk_secret(stored, 0, b"zip", namespace="ns")
    assert code_secrets.chunk_owner(chunk) == "u-1"
    assert code_secrets.chunk_data(chunk) == b"zip"
    assert chunk["metadata"]["name"] == code_secrets.chunk_name(stored.sha256_hex, 0)
    assert chunk["immutable"] is True


@pytest.mark.parametrize("data", [{}, {"chunk": "not base64!"}])
def test_a_chunk_without_its_bytes_is_refused(data):
    with pytest.raises(ValueError):
        code_secrets.chunk_data({"metadata": {}, "data": data})
