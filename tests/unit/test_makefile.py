"""The Makefile's virtualenv follows the interpreter chosen for it.

Each test runs the checkout's Makefile, copied into a scratch directory, for the target that
records the interpreter (``.venv/.interpreter``) only: nothing is installed. Interpreters
are stand-ins, scripts that answer the Makefile's question with a fixed path and version.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.checkout import ROOT

RECORD = Path(".venv") / ".interpreter"
SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "Makefile").write_text((ROOT / "Makefile").read_text())
    return tmp_path


def _interpreter(directory: Path, name: str, answer: str | None) -> Path:
    """A stand-in interpreter printing ``answer`` (path and version), or failing."""
    path = directory / name
    path.write_text("#!/bin/sh\n" + (f"echo '{answer}'\n" if answer else "exit 1\n"))
    path.chmod(0o755)
    return path


def _make(checkout: Path, python: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if key != "PYTHON"}
    chosen = [f"PYTHON={python}"] if python is not None else []
    return subprocess.run(
        ["make", "-s", "-C", str(checkout), str(RECORD), *chosen],
        capture_output=True,
        text=True,
        env=environ,
        check=False,
    )


def _marker(checkout: Path) -> Path:
    """A file inside the venv, standing for what was installed there."""
    marker = checkout / ".venv" / "installed"
    marker.write_text("")
    return marker


def test_a_new_venv_records_its_interpreter_and_says_so_on_stderr(checkout: Path) -> None:
    python = _interpreter(checkout, "python-a", "/opt/python-a/bin/python3.12 3.12.7")
    made = _make(checkout, python)
    assert made.returncode == 0, made.stderr
    assert (checkout / RECORD).read_text() == "/opt/python-a/bin/python3.12 3.12.7\n"
    # stdout stays clean: `eval "$(make -s cluster-env)"` reads it.
    assert (made.stdout, made.stderr) == (
        "",
        "making .venv from /opt/python-a/bin/python3.12 3.12.7\n",
    )


def test_the_same_interpreter_keeps_the_venv(checkout: Path) -> None:
    python = _interpreter(checkout, "python-a", "/opt/python-a/bin/python3.12 3.12.7")
    assert _make(checkout, python).returncode == 0
    marker = _marker(checkout)
    again = _make(checkout, python)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert marker.exists()


def test_another_interpreter_makes_the_venv_again(checkout: Path) -> None:
    assert _make(checkout, _interpreter(checkout, "a", "/opt/a/bin/python3 3.11.7")).returncode == 0
    marker = _marker(checkout)
    other = _make(checkout, _interpreter(checkout, "b", "/usr/bin/python3.11 3.11.2"))
    assert other.returncode == 0, other.stderr
    assert not marker.exists()
    assert (checkout / RECORD).read_text() == "/usr/bin/python3.11 3.11.2\n"


def test_an_interpreter_that_fails_stops_make_and_keeps_the_venv(checkout: Path) -> None:
    assert _make(checkout, _interpreter(checkout, "a", "/opt/a/bin/python3 3.11.7")).returncode == 0
    marker = _marker(checkout)
    broken = _make(checkout, _interpreter(checkout, "broken", None))
    assert broken.returncode != 0
    assert marker.exists()
    assert (checkout / RECORD).read_text() == "/opt/a/bin/python3 3.11.7\n"


def test_without_a_choice_the_systems_python_is_taken_when_it_can_make_a_venv(
    checkout: Path,
) -> None:
    version = _system_python_version()
    if version is None or tuple(map(int, version.split(".")[:2])) < (3, 11):
        pytest.skip("no /usr/bin/python3 of 3.11 or newer that can make a venv here")
    made = _make(checkout)
    assert made.returncode == 0, made.stderr
    assert (checkout / RECORD).read_text() == f"{SYSTEM_PYTHON.resolve()} {version}\n"


def _system_python_version() -> str | None:
    """The version of /usr/bin/python3 if it can make a venv (has ensurepip), else None."""
    try:
        probe = subprocess.run(
            [str(SYSTEM_PYTHON), "-c", "import sys, ensurepip; print(sys.version.split()[0])"],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return None
    return probe.stdout.strip() if probe.returncode == 0 else None
