"""Whether the instances' users can start an interpreter: probed with a real process
started as such a user (root only)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.backends.local_users import InstanceUsers

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root can start a process as another user; run as root"
)

BASE = 1_500_000_000


@pytest.fixture
def open_directory() -> Iterator[Path]:
    """A directory anyone may enter (pytest's own temporary directory is root's, 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="kubelambda-probe-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def interpreter(directory: Path, *, status: int = 0) -> str:
    """A stand-in that answers the probe with ``status``, whatever it is asked to run."""
    path = directory / f"python-{status}"
    path.write_text(f"#!/bin/sh\nexit {status}\n")
    path.chmod(0o755)
    return str(path)


def test_an_interpreter_the_users_can_reach_and_start_is_usable(open_directory: Path) -> None:
    assert InstanceUsers(BASE).can_run(interpreter(open_directory))


def test_an_interpreter_behind_a_directory_only_root_enters_is_not(open_directory: Path) -> None:
    closed = open_directory / "closed"
    closed.mkdir(mode=0o700)

    assert not InstanceUsers(BASE).can_run(interpreter(closed))


def test_an_interpreter_that_fails_to_start_is_not(open_directory: Path) -> None:
    assert not InstanceUsers(BASE).can_run(interpreter(open_directory, status=1))


def test_the_answer_is_kept(open_directory: Path) -> None:
    users = InstanceUsers(BASE)
    path = interpreter(open_directory)
    assert users.can_run(path)
    os.unlink(path)

    assert users.can_run(path)
