"""The built wheel, installed outside the checkout, runs `kubelambda up --example` to an invoke.

Builds the wheel from a copy of the working tree (so the build leaves nothing in the
checkout), installs it with its runtime dependencies (from PyPI or pip's cache) into a
fresh venv in a temporary directory, and runs that venv's `kubelambda` from a directory
outside the checkout with a minimal environment: neither the checkout nor the test venv
can stand in for a module or a file the wheel lacks.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import log_text, start_platform, stop_platform

ROOT = Path(__file__).resolve().parents[2]
# Where each product folder of the checkout lands in the wheel (pyproject.toml's package-dir).
WHEEL_PLACES = {
    "kubelambda": "kubelambda",
    "gateway": "gateway",
    "controller": "controller",
    "runtime-images/agent/kubelambda_agent": "kubelambda_agent",
    "examples": "kubelambda/examples",
}
PIP_TIMEOUT_SECONDS = 240
EXIT_GRACE_SECONDS = 5

# Each test's bound covers the fixtures it sets up: a pip run (build or install) and the run.
pytestmark = pytest.mark.timeout(2 * PIP_TIMEOUT_SECONDS + 120)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / "kubelambda"
    # Dot-folders (.git, .venv, caches, .kubelambda) and build output are not the project.
    ignore = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, ignore=ignore)
    out = tmp_path_factory.mktemp("wheelhouse")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(source))
    (built,) = out.glob("kubelambda-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    # No pip of its own (bootstrapping one takes seconds): the test run's pip installs into it.
    _run(sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv))
    _run(
        sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", str(wheel)
    )
    return venv


def test_wheel_holds_every_module_and_example_file_of_the_checkout(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
    expected = {
        f"{place}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder, place in WHEEL_PLACES.items()
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith(".")
    }
    assert sorted(expected - packed) == []


def test_installed_wheel_runs_the_example_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    running = start_platform(
        tmp_path / "home",
        "--example",
        kubelambda=str(venv / "bin" / "kubelambda"),
        environ={"PATH": "/usr/bin:/bin", "HOME": str(outside), "LANG": "C.UTF-8"},
        cwd=outside,
    )
    try:
        client: Any = running.lambda_client(read_timeout=60)
        # The URL file is written before the example is deployed: wait for it to exist first.
        for waiter in ("function_exists", "function_active_v2"):
            client.get_waiter(waiter).wait(
                FunctionName="hello", WaiterConfig={"Delay": 0.1, "MaxAttempts": 300}
            )
        response = client.invoke(FunctionName="hello", Payload=b'{"name": "wheel"}')
        body = json.loads(response["Payload"].read())
        assert response["StatusCode"] == 200
        assert "FunctionError" not in response, body
        assert body["message"] == "Hello, wheel!"
    finally:
        stop_platform(running.process, signum=signal.SIGINT)
        print(log_text(running.home))  # pytest shows it if the test fails
    assert running.process.returncode == 0
    assert _processes_running_from(venv) == []


def _processes_running_from(venv: Path) -> list[str]:
    """Command lines of live processes started from the venv (agents, runtimes), after a
    short grace for children that were signalled as the platform stopped."""
    deadline = time.monotonic() + EXIT_GRACE_SECONDS
    while True:
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue  # gone meanwhile, or not ours to read
            if f"{venv}/" in cmdline:
                found.append(f"{proc.name}: {cmdline}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _run(*argv: str) -> None:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False
    )
    assert result.returncode == 0, f"{' '.join(argv)}\n{result.stdout}\n{result.stderr}"
