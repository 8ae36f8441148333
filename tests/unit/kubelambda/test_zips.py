"""Zip packages: checks before accepting one, unpacking with modes kept, traversal refused."""

from __future__ import annotations

import io
import stat
import threading
import warnings
import zipfile
from pathlib import Path

import pytest

from kubelambda import errors, zips


def archive(entries: list[tuple[str, bytes, int]]) -> bytes:
    """A zip of (name, content, unix mode) entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out, warnings.catch_warnings():
        # Hostile packages repeat names on purpose.
        warnings.simplefilter("ignore", UserWarning)
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            out.writestr(info, content)
    return buffer.getvalue()


@pytest.fixture
def stored(tmp_path: Path):
    """Write zip bytes to a file, as a code store keeps them; returns its path."""

    def store(data: bytes) -> Path:
        path = tmp_path / "package.zip"
        path.write_bytes(data)
        return path

    return store


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "unpacked" / "package"


@pytest.mark.parametrize(
    "name",
    ["../evil.py", "/etc/evil", "a/../../evil", "a\\..\\evil", ".."],
)
def test_entries_leaving_the_package_are_refused(name):
    with pytest.raises(errors.InvalidParameterValue, match="outside the package"):
        zips.inspect(archive([(name, b"x", 0o644)]))


@pytest.mark.parametrize("name", ["app.py", "lib/x/y.py", "a/../b.py", "./c.py"])
def test_entries_inside_the_package_are_accepted(name):
    zips.inspect(archive([(name, b"x", 0o644)]))


def test_a_file_that_is_not_a_zip_is_refused():
    with pytest.raises(errors.InvalidParameterValue, match="Could not unzip"):
        zips.inspect(b"PK\x03\x04 truncated")


@pytest.mark.parametrize(
    ("names", "valid"), [(["bootstrap"], True), (["lib/bootstrap"], False), (["app.py"], False)]
)
def test_a_required_file_must_be_at_the_top_level(names, valid):
    data = archive([(name, b"#!/bin/sh\n", 0o755) for name in names])
    if valid:
        zips.inspect(data, require="bootstrap")
    else:
        with pytest.raises(errors.InvalidParameterValue, match="bootstrap"):
            zips.inspect(data, require="bootstrap")


@pytest.mark.parametrize(
    ("mode", "expected"), [(0o755, 0o555), (0o644, 0o444), (0o600, 0o400), (0o700, 0o500)]
)
def test_unpacked_files_keep_their_mode_without_write_bits(stored, target, mode, expected):
    unpacked = zips.unpack(stored(archive([("bootstrap", b"#!/bin/sh\n", mode)])), target)
    assert unpacked == target
    assert stat.S_IMODE((unpacked / "bootstrap").stat().st_mode) == expected


def test_unpack_is_done_once_per_target(stored, target):
    path = stored(archive([("app.py", b"x = 1\n", 0o644)]))
    first = zips.unpack(path, target)
    path.write_bytes(archive([("other.py", b"y = 2\n", 0o644)]))
    assert zips.unpack(path, target) == first
    assert [p.name for p in first.iterdir()] == ["app.py"]
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_a_link_pointing_outside_is_refused_at_unpack(stored, target):
    path = stored(archive([("link", b"../../etc/passwd", stat.S_IFLNK | 0o777)]))
    with pytest.raises(zips.UnpackError, match="outside"):
        zips.unpack(path, target)
    assert not target.exists()


def test_a_link_inside_the_package_is_kept(stored, target):
    entries = [
        ("lib/real.txt", b"hello", 0o644),
        ("alias.txt", b"lib/real.txt", stat.S_IFLNK | 0o777),
    ]
    unpacked = zips.unpack(stored(archive(entries)), target)
    assert (unpacked / "alias.txt").read_text() == "hello"


def test_a_corrupt_entry_fails_the_unpack_and_leaves_nothing(stored, target):
    data = bytearray(archive([("app.py", b"x = 1\n" * 100, 0o644)]))
    # Flip a byte of the stored content: the directory still reads, the CRC does not match.
    data[40] ^= 0xFF
    with pytest.raises(zips.UnpackError):
        zips.unpack(stored(bytes(data)), target)
    assert list(target.parent.iterdir()) == []


def test_entries_without_a_unix_mode_are_readable(stored, target):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        out.writestr("app.py", b"x = 1\n")
    # As written on Windows: no unix mode bits in the external attributes.
    data = bytearray(buffer.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()[0]
    assert info.external_attr >> 16 == 0o600  # zipfile's own default, rewritten below
    central = data.rindex(b"PK\x01\x02")
    data[central + 38 : central + 42] = (0).to_bytes(4, "little")
    unpacked = zips.unpack(stored(bytes(data)), target)
    assert stat.S_IMODE((unpacked / "app.py").stat().st_mode) == 0o444


def test_a_damaged_deflate_stream_fails_the_unpack(stored, target):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("app.py", "".join(f"line {i}\n" for i in range(2000)))
    data = bytearray(buffer.getvalue())
    for offset in range(50, 200):
        data[offset] ^= 0x5A
    with pytest.raises(zips.UnpackError):
        zips.unpack(stored(bytes(data)), target)
    assert not target.exists()


def test_a_stopped_unpack_is_abandoned_and_leaves_nothing(stored, target):
    path = stored(archive([(f"f{i}.txt", b"x", 0o644) for i in range(10)]))
    stop = threading.Event()
    stop.set()
    with pytest.raises(zips.UnpackError, match="interrupted"):
        zips.unpack(path, target, stop=stop)
    assert list(target.parent.iterdir()) == []


def test_remove_tree_removes_a_read_only_package(stored, target):
    unpacked = zips.unpack(stored(archive([("lib/app.py", b"x = 1\n", 0o644)])), target)
    zips.remove_tree(unpacked)
    assert not unpacked.exists()


LINK = stat.S_IFLNK | 0o777

# Hostile packages: each would write (or point) outside the package directory if links
# were followed while unpacking. Names of the form (name, content, mode) as ``archive``.
HOSTILE = {
    "chained links": [
        ("a/b", b"..", LINK),
        ("a/b/c", b"..", LINK),
        ("a/b/c/d", b"..", LINK),
        ("a/b/c/d/escaped.txt", b"pwned", 0o644),
    ],
    "a file under a link": [("a", b".", LINK), ("a/escaped.txt", b"pwned", 0o644)],
    "a loop": [("a", b"b", LINK), ("b", b"a", LINK)],
    "a self loop": [("a", b"a", LINK)],
    "a link to a link pointing out": [
        ("up", b"..", LINK),
        ("lib/x", b"../up/escaped.txt", LINK),
    ],
    "a link through a later link": [
        ("x", b"a/b/../../escaped.txt", LINK),
        ("a/b", b"..", LINK),
    ],
    "a link overwritten by a file": [
        ("lib", b"..", LINK),
        ("lib", b"pwned", 0o644),
    ],
    "a file overwritten by a link": [
        ("escaped.txt", b"x", 0o644),
        ("escaped.txt", b"../escaped.txt", LINK),
    ],
    "a directory through a link": [("a", b"..", LINK), ("a/escaped/", b"", 0o40755)],
    "an absolute link": [("a", b"/tmp", LINK)],
}


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    """A parent directory of the unpack target in which nothing may appear."""
    return tmp_path / "sentinel"


@pytest.mark.parametrize("entries", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_links_are_refused_at_inspect(entries):
    with pytest.raises(errors.InvalidParameterValue, match="package"):
        zips.inspect(archive(entries))


@pytest.mark.parametrize("entries", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_links_write_nothing_outside_at_unpack(sentinel, entries):
    sentinel.mkdir()
    zip_path = sentinel.parent / "package.zip"
    zip_path.write_bytes(archive(entries))
    target = sentinel / "code" / "package"
    with pytest.raises(zips.UnpackError):
        zips.unpack(zip_path, target)
    assert not target.exists()
    left = [p for p in sentinel.rglob("*") if p.name != "code"]
    assert left == []
    assert not (sentinel.parent / "escaped.txt").exists()


def test_links_inside_through_parent_directories_are_kept(stored, target):
    # node_modules/.bin style: a link that climbs, then descends, staying inside.
    entries = [
        ("node_modules/pkg/bin/tool.js", b"tool", 0o755),
        ("node_modules/.bin/tool", b"../pkg/bin/tool.js", LINK),
        ("lib", b"node_modules/pkg", LINK),
        ("tool2", b"lib/bin/tool.js", LINK),
    ]
    zips.inspect(archive(entries))
    unpacked = zips.unpack(stored(archive(entries)), target)
    assert (unpacked / "node_modules/.bin/tool").read_text() == "tool"
    assert (unpacked / "tool2").read_text() == "tool"
