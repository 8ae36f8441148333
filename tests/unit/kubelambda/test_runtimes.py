"""Runtime names and interpreter discovery."""

import sys
from pathlib import Path

import pytest

from kubelambda import runtimes

# The interpreter this one's venv (if any) was made from.
BASE_PYTHON = sys._base_executable


def test_the_running_interpreter_serves_its_own_runtime_outside_its_venv() -> None:
    own = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = runtimes.find_python(own, {})
    assert python == BASE_PYTHON
    assert python is not None and not (Path(python).parent.parent / "pyvenv.cfg").exists()
    assert own in runtimes.available_runtimes({})


def test_a_virtual_environments_interpreter_is_never_taken(tmp_path: Path) -> None:
    own = f"python{sys.version_info.major}.{sys.version_info.minor}"
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = {Path(BASE_PYTHON).parent}\n")
    (venv / "bin" / own).symlink_to(BASE_PYTHON)
    asked: list[str] = []

    def usable(python: str) -> bool:
        asked.append(python)
        return True

    found = runtimes.find_python(own, {"PATH": str(venv / "bin")}, usable=usable)
    assert found == BASE_PYTHON
    assert str(venv / "bin" / own) not in asked
    # Named explicitly, it is the operator's choice.
    override = {
        f"KUBELAMBDA_PYTHON_{own.removeprefix('python').replace('.', '_')}": str(venv / "bin" / own)
    }
    assert runtimes.find_python(own, override) == str(venv / "bin" / own)


def test_the_first_interpreter_found_usable_is_taken(tmp_path: Path) -> None:
    own = f"python{sys.version_info.major}.{sys.version_info.minor}"
    other = tmp_path / own
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    environ = {"PATH": str(tmp_path)}
    asked: list[str] = []

    def usable(python: str) -> bool:
        asked.append(python)
        return python != BASE_PYTHON

    assert runtimes.find_python(own, environ, usable=usable) == str(other)
    assert asked == [BASE_PYTHON, str(other)]
    assert own not in runtimes.available_runtimes(environ, usable=lambda _: False)


def test_an_override_must_be_executable(tmp_path: Path) -> None:
    fake = tmp_path / "python3.12"
    fake.write_text("#!/bin/sh\n")
    assert runtimes.find_python("python3.12", {"KUBELAMBDA_PYTHON_3_12": str(fake)}) is None
    fake.chmod(0o755)
    assert runtimes.find_python("python3.12", {"KUBELAMBDA_PYTHON_3_12": str(fake)}) == str(fake)
    override = {"KUBELAMBDA_PYTHON_3_12": str(fake)}
    assert runtimes.find_python("python3.12", override, usable=lambda _: False) is None


def test_unknown_and_provided_runtimes_have_no_interpreter() -> None:
    assert runtimes.find_python("nodejs20.x", {}) is None
    assert runtimes.find_python("provided.al2023", {}) is None
    assert runtimes.is_provided("provided.al2023")
    assert not runtimes.is_provided("python3.11")
    assert set(runtimes.PROVIDED_RUNTIMES) <= set(runtimes.available_runtimes({}))


def test_a_base_interpreter_that_is_gone_is_not_offered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A venv made with --copies outlives the interpreter it was made from.
    own = f"python{sys.version_info.major}.{sys.version_info.minor}"
    monkeypatch.setattr(sys, "_base_executable", str(tmp_path / "removed" / own))
    found = runtimes.find_python(own, {"PATH": str(tmp_path)})
    assert found != str(tmp_path / "removed" / own)
