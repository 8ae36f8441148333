"""Code packages: checks before storing, unpacking with modes kept, path traversal refused."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from kubelambda import errors
from kubelambda.store import CodePackages, PackageError


def archive(entries: list[tuple[str, bytes, int]]) -> bytes:
    """A zip of (name, content, unix mode) entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            out.writestr(info, content)
    return buffer.getvalue()


@pytest.fixture
def packages(tmp_path: Path) -> CodePackages:
    return CodePackages(tmp_path / "code")


@pytest.mark.parametrize(
    "name",
    ["../evil.py", "/etc/evil", "a/../../evil", "a\\..\\evil", ".."],
)
def test_entries_leaving_the_package_are_refused(name):
    with pytest.raises(errors.InvalidParameterValue, match="outside the package"):
        CodePackages.inspect(archive([(name, b"x", 0o644)]))


@pytest.mark.parametrize("name", ["app.py", "lib/x/y.py", "a/../b.py", "./c.py"])
def test_entries_inside_the_package_are_accepted(name):
    CodePackages.inspect(archive([(name, b"x", 0o644)]))


def test_a_file_that_is_not_a_zip_is_refused():
    with pytest.raises(errors.InvalidParameterValue, match="Could not unzip"):
        CodePackages.inspect(b"PK\x03\x04 truncated")


@pytest.mark.parametrize(
    ("names", "valid"), [(["bootstrap"], True), (["lib/bootstrap"], False), (["app.py"], False)]
)
def test_a_required_file_must_be_at_the_top_level(names, valid):
    data = archive([(name, b"#!/bin/sh\n", 0o755) for name in names])
    if valid:
        CodePackages.inspect(data, require="bootstrap")
    else:
        with pytest.raises(errors.InvalidParameterValue, match="bootstrap"):
            CodePackages.inspect(data, require="bootstrap")


def test_save_names_the_zip_by_its_digest(packages):
    data = archive([("app.py", b"x = 1\n", 0o644)])
    stored = packages.save(data)
    assert stored.sha256_hex == hashlib.sha256(data).hexdigest()
    assert stored.code_sha256 == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert packages.zip_path(stored.sha256_hex).read_bytes() == data


@pytest.mark.parametrize(
    ("mode", "expected"), [(0o755, 0o555), (0o644, 0o444), (0o600, 0o400), (0o700, 0o500)]
)
def test_unpacked_files_keep_their_mode_without_write_bits(packages, mode, expected):
    stored = packages.save(archive([("bootstrap", b"#!/bin/sh\n", mode)]))
    unpacked = packages.unpack(stored.sha256_hex)
    assert stat.S_IMODE((unpacked / "bootstrap").stat().st_mode) == expected


def test_unpack_is_done_once_per_content(packages):
    stored = packages.save(archive([("app.py", b"x = 1\n", 0o644)]))
    first = packages.unpack(stored.sha256_hex)
    assert packages.unpack(stored.sha256_hex) == first
    assert [p.name for p in first.parent.iterdir()] == [stored.sha256_hex]


def test_a_link_pointing_outside_is_refused_at_unpack(packages):
    stored = packages.save(archive([("link", b"../../etc/passwd", stat.S_IFLNK | 0o777)]))
    with pytest.raises(PackageError, match="outside"):
        packages.unpack(stored.sha256_hex)
    assert not packages.directory(stored.sha256_hex).exists()


def test_a_link_inside_the_package_is_kept(packages):
    entries = [
        ("lib/real.txt", b"hello", 0o644),
        ("alias.txt", b"lib/real.txt", stat.S_IFLNK | 0o777),
    ]
    unpacked = packages.unpack(packages.save(archive(entries)).sha256_hex)
    assert (unpacked / "alias.txt").read_text() == "hello"


def test_a_corrupt_entry_fails_the_unpack_and_leaves_nothing(packages):
    data = bytearray(archive([("app.py", b"x = 1\n" * 100, 0o644)]))
    # Flip a byte of the stored content: the directory still reads, the CRC does not match.
    data[40] ^= 0xFF
    stored = packages.save(bytes(data))
    with pytest.raises(PackageError):
        packages.unpack(stored.sha256_hex)
    assert not packages.directory(stored.sha256_hex).exists()


def test_entries_without_a_unix_mode_are_readable(packages):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        out.writestr("app.py", b"x = 1\n")
    # As written on Windows: no unix mode bits in the external attributes.
    data = bytearray(buffer.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()[0]
    assert info.external_attr >> 16 == 0o600  # zipfile's own default, rewritten below
    central = data.rindex(b"PK\x01\x02")
    data[central + 38 : central + 42] = (0).to_bytes(4, "little")
    unpacked = packages.unpack(packages.save(bytes(data)).sha256_hex)
    assert stat.S_IMODE((unpacked / "app.py").stat().st_mode) == 0o444


def test_a_damaged_deflate_stream_fails_the_unpack(packages):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("app.py", "".join(f"line {i}\n" for i in range(2000)))
    data = bytearray(buffer.getvalue())
    for offset in range(50, 200):
        data[offset] ^= 0x5A
    stored = packages.save(bytes(data))
    with pytest.raises(PackageError):
        packages.unpack(stored.sha256_hex)


@pytest.mark.parametrize(
    ("kept", "age", "collected"),
    [(False, 7200, True), (True, 7200, False), (False, 10, False)],
)
def test_collect_removes_only_unreferenced_packages_past_the_grace(packages, kept, age, collected):
    stored = packages.save(archive([("app.py", b"x = 1\n", 0o644)]))
    packages.unpack(stored.sha256_hex)
    now = packages.zip_path(stored.sha256_hex).stat().st_mtime + age
    keep = {stored.sha256_hex} if kept else set()
    removed = packages.collect(keep, now=now, grace_seconds=3600)
    assert removed == ([stored.sha256_hex] if collected else [])
    assert packages.zip_path(stored.sha256_hex).exists() is not collected
    assert packages.directory(stored.sha256_hex).exists() is not collected


def test_saving_known_content_again_renews_its_grace(packages):
    data = archive([("app.py", b"x = 1\n", 0o644)])
    stored = packages.save(data)
    old = packages.zip_path(stored.sha256_hex).stat().st_mtime - 7200
    os.utime(packages.zip_path(stored.sha256_hex), (old, old))
    packages.save(data)
    now = old + 7200
    assert packages.collect(set(), now=now, grace_seconds=3600) == []


def test_a_stopped_unpack_is_abandoned_and_leaves_nothing(packages):
    stored = packages.save(archive([(f"f{i}.txt", b"x", 0o644) for i in range(10)]))
    stop = threading.Event()
    stop.set()
    with pytest.raises(PackageError, match="interrupted"):
        packages.unpack(stored.sha256_hex, stop=stop)
    assert not packages.directory(stored.sha256_hex).exists()
    assert list(packages.directory(stored.sha256_hex).parent.iterdir()) == []
