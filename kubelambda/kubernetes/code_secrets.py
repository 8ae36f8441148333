"""The Secrets a code package is stored as, built and read without I/O.

``KubernetesCodeStore`` (``code_store``) writes and reads these; nothing else does. A
package with SHA-256 ``<sha>`` is

    kubelambda-code-<sha[:40]>        its manifest: type ``kubelambda.io/code-package``,
                                      no data; annotations name the full digest, the
                                      size, the chunks' size and digests, the state
                                      (``writing`` or ``complete``) and when it was
                                      created and last touched
    kubelambda-code-<sha[:40]>-<i>    chunk ``i``: type ``kubelambda.io/code-chunk``,
                                      immutable, at most ``CHUNK_BYTES`` of the zip
                                      under ``data.chunk``; owned by the manifest

Everything a reader or the collector needs is in the manifest's metadata, so they list
metadata only. Names follow from the digest, so replicas that put the same zip at once
write the same objects. Secrets rather than ConfigMaps: a zip may hold credentials, and
clusters guard (and may encrypt) Secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubelambda.models import CodePackage

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_SELECTOR",
    "CHUNK_TYPE",
    "PACKAGE_SELECTOR",
    "PACKAGE_TYPE",
    "StoredPackage",
    "chunk_data",
    "chunk_name",
    "chunk_owner",
    "chunk_secret",
    "complete_patch",
    "digests",
    "package_name",
    "package_secret",
    "read_package",
    "split",
    "touch_patch",
    "writing_patch",
]

# 700 KiB: base64 makes a chunk ~933 KiB of JSON, under the 1 MiB a Secret may hold and
# well under the apiserver's (etcd's) 1.5 MiB per request, with room for the metadata.
CHUNK_BYTES = 700 * 1024

PACKAGE_TYPE = "kubelambda.io/code-package"
CHUNK_TYPE = "kubelambda.io/code-chunk"

_MANAGED_BY = "app.kubernetes.io/managed-by"
_COMPONENT = "app.kubernetes.io/component"
_PREFIX_LABEL = "kubelambda.io/code-sha256-prefix"
_PACKAGE_COMPONENT = "code-package"
_CHUNK_COMPONENT = "code-chunk"
PACKAGE_SELECTOR = f"{_MANAGED_BY}=kubelambda,{_COMPONENT}={_PACKAGE_COMPONENT}"
CHUNK_SELECTOR = f"{_MANAGED_BY}=kubelambda,{_COMPONENT}={_CHUNK_COMPONENT}"

_SHA256 = "kubelambda.io/code-sha256"
_SIZE = "kubelambda.io/code-size"
_CHUNKS = "kubelambda.io/code-chunks"
_CHUNK_SIZE = "kubelambda.io/code-chunk-bytes"
_CHUNK_DIGESTS = "kubelambda.io/code-chunk-sha256"
_STATE = "kubelambda.io/code-state"
_CREATED = "kubelambda.io/created"
_TOUCHED = "kubelambda.io/touched"
_INDEX = "kubelambda.io/code-chunk-index"

_WRITING = "writing"
_COMPLETE = "complete"
_DATA_KEY = "chunk"
# A label value holds at most 63 characters, so names and labels carry 160 bits of the
# digest; the manifest's annotation carries all of it, and readers compare that.
_PREFIX_CHARS = 40


@dataclass(frozen=True, slots=True)
class StoredPackage:
    """What a manifest Secret says about its package."""

    name: str
    uid: str
    resource_version: str
    sha256_hex: str
    size: int
    chunk_bytes: int
    chunk_digests: tuple[str, ...]
    complete: bool
    touched: float


def package_name(sha256_hex: str) -> str:
    return f"kubelambda-code-{sha256_hex[:_PREFIX_CHARS]}"


def chunk_name(sha256_hex: str, index: int) -> str:
    return f"{package_name(sha256_hex)}-{index}"


def split(data: bytes, chunk_bytes: int) -> list[bytes]:
    """``data`` in pieces of ``chunk_bytes`` (the last one shorter); none when empty."""
    return [data[offset : offset + chunk_bytes] for offset in range(0, len(data), chunk_bytes)]


def digests(pieces: Sequence[bytes]) -> tuple[str, ...]:
    return tuple(hashlib.sha256(piece).hexdigest() for piece in pieces)


def package_secret(
    package: CodePackage,
    *,
    namespace: str,
    chunk_bytes: int,
    chunk_digests: Sequence[str],
    now: float,
) -> dict[str, Any]:
    """The manifest of ``package``, in state ``writing`` until its chunks are written."""
    moment = _timestamp(now)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": PACKAGE_TYPE,
        "immutable": True,
        "metadata": {
            "name": package_name(package.sha256_hex),
            "namespace": namespace,
            "labels": _labels(package.sha256_hex, _PACKAGE_COMPONENT),
            "annotations": {
                _SHA256: package.sha256_hex,
                _SIZE: str(package.size),
                _CHUNKS: str(len(chunk_digests)),
                _CHUNK_SIZE: str(chunk_bytes),
                _CHUNK_DIGESTS: ",".join(chunk_digests),
                _STATE: _WRITING,
                _CREATED: moment,
                _TOUCHED: moment,
            },
        },
    }


def chunk_secret(
    stored: StoredPackage, index: int, piece: bytes, *, namespace: str
) -> dict[str, Any]:
    """Chunk ``index`` of ``stored``, owned by its manifest so deleting that removes it.
    No ``blockOwnerDeletion``: nothing waits on chunks, and it would need more RBAC."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": CHUNK_TYPE,
        "immutable": True,
        "metadata": {
            "name": chunk_name(stored.sha256_hex, index),
            "namespace": namespace,
            "labels": _labels(stored.sha256_hex, _CHUNK_COMPONENT),
            "annotations": {_INDEX: str(index)},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "name": stored.name,
                    "uid": stored.uid,
                    "controller": True,
                }
            ],
        },
        "data": {_DATA_KEY: base64.b64encode(piece).decode()},
    }


def touch_patch(stored: StoredPackage, now: float) -> dict[str, Any]:
    """A merge patch renewing ``touched``; refused (409) if the manifest changed since
    it was read, so a collector that read it too is refused in turn (its delete is
    conditional on the same resourceVersion)."""
    return {
        "metadata": {
            "resourceVersion": stored.resource_version,
            "annotations": {_TOUCHED: _timestamp(now)},
        }
    }


def complete_patch(stored: StoredPackage, now: float) -> dict[str, Any]:
    """A merge patch marking the chunks written; refused (422, the uid is immutable) if
    the manifest was replaced by a namesake, or 404 if it was removed."""
    return {
        "metadata": {
            "uid": stored.uid,
            "annotations": {_STATE: _COMPLETE, _TOUCHED: _timestamp(now)},
        }
    }


def writing_patch(stored: StoredPackage) -> dict[str, Any]:
    """A merge patch taking a corrupted package back to ``writing``: readers see it
    missing, and the next put of the same zip rewrites its chunks."""
    return {"metadata": {"uid": stored.uid, "annotations": {_STATE: _WRITING}}}


def read_package(obj: Mapping[str, Any]) -> StoredPackage:
    """The manifest's metadata (of a full object or a metadata-only list item). Raises
    ``ValueError`` when it is not a well-formed manifest."""
    metadata = obj["metadata"]
    notes = metadata.get("annotations") or {}
    try:
        listed = notes[_CHUNK_DIGESTS]
        count = int(notes[_CHUNKS])
        stored = StoredPackage(
            name=metadata["name"],
            uid=metadata["uid"],
            resource_version=metadata["resourceVersion"],
            sha256_hex=notes[_SHA256],
            size=int(notes[_SIZE]),
            chunk_bytes=int(notes[_CHUNK_SIZE]),
            chunk_digests=tuple(listed.split(",")) if listed else (),
            complete=notes[_STATE] == _COMPLETE,
            touched=datetime.fromisoformat(notes[_TOUCHED]).timestamp(),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a code package manifest: {exc!r}") from exc
    if (
        len(stored.chunk_digests) != count
        or stored.chunk_bytes <= 0
        or stored.name != package_name(stored.sha256_hex)
    ):
        raise ValueError(f"inconsistent code package manifest {stored.name}")
    return stored


def chunk_data(obj: Mapping[str, Any]) -> bytes:
    """The bytes of a chunk Secret. Raises ``ValueError`` when it holds none."""
    try:
        return base64.b64decode((obj.get("data") or {})[_DATA_KEY], validate=True)
    except (KeyError, binascii.Error) as exc:
        raise ValueError(f"not a code chunk: {exc!r}") from exc


def chunk_owner(obj: Mapping[str, Any]) -> str | None:
    """The uid of the manifest a chunk belongs to (``None``: it names none)."""
    for reference in obj["metadata"].get("ownerReferences") or ():
        if reference.get("kind") == "Secret" and reference.get("controller"):
            return str(reference["uid"])
    return None


def _labels(sha256_hex: str, component: str) -> dict[str, str]:
    return {
        _MANAGED_BY: "kubelambda",
        _COMPONENT: component,
        _PREFIX_LABEL: sha256_hex[:_PREFIX_CHARS],
    }


def _timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat()
