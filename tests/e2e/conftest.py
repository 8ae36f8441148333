"""A whole embedded platform (`kubelambda up`) in a subprocess, driven by real clients.

The fixture starts the console script exactly as `make run` does, with its state in a
temporary KUBELAMBDA_HOME and a free port, and reads the connection details back with
`kubelambda env`, as a user would.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.process_limits import lower_open_files_to

KUBELAMBDA = str(Path(sys.executable).with_name("kubelambda"))
START_TIMEOUT_SECONDS = 60

T = TypeVar("T")


@dataclass(frozen=True)
class Platform:
    url: str
    home: Path
    env: Mapping[str, str]
    process: subprocess.Popen[bytes]
    # The environment `kubelambda up` was started with (what `kubelambda dlq` needs too).
    launch_env: Mapping[str, str]

    def lambda_client(self, *, read_timeout: int = 120) -> object:
        return boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name=self.env["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"max_attempts": 0}, read_timeout=read_timeout),
        )


def start_platform(
    home: Path,
    *extra_args: str,
    kubelambda: str = KUBELAMBDA,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    open_files_soft_limit: int | None = None,
) -> Platform:
    """Run `kubelambda up` (this venv's, in this environment, unless told otherwise) until its
    gateway answers; its output goes to `log_text(home)`."""
    base = os.environ if environ is None else environ
    env = {**base, "KUBELAMBDA_HOME": str(home), "KUBELAMBDA_PORT": "0"}
    with (home.parent / f"{home.name}.log").open("wb") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            [kubelambda, "up", *extra_args],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lower_open_files_to(open_files_soft_limit),
        )
    url_file = home / "gateway.url"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not url_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_platform(process)
            raise RuntimeError(f"kubelambda up did not start:\n{log_text(home)}")
        time.sleep(0.05)
    try:
        exports = subprocess.run(
            [kubelambda, "env"],
            env=env,
            cwd=cwd,
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        stop_platform(process)
        raise RuntimeError(f"kubelambda env failed: {exc}\n{exc.stderr}\n{log_text(home)}") from exc
    values = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in exports.splitlines()
    )
    return Platform(
        url=values["AWS_ENDPOINT_URL_LAMBDA"],
        home=home,
        env=values,
        process=process,
        launch_env=env,
    )


def log_text(home: Path) -> str:
    return (home.parent / f"{home.name}.log").read_text(errors="replace")


def stop_platform(
    process: subprocess.Popen[bytes], *, signum: signal.Signals = signal.SIGTERM
) -> None:
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise


@pytest.fixture
def writable_dir() -> Iterator[Callable[[str], Path]]:
    """Makes directories that functions may write in (and tests read), removed after the
    test: under the system's temporary directory, not pytest's (0700, and a platform run
    as root runs its functions as users of their own)."""
    made: list[Path] = []

    def make(prefix: str) -> Path:
        directory = Path(tempfile.mkdtemp(prefix=f"kubelambda-{prefix}-"))
        directory.chmod(0o777)
        made.append(directory)
        return directory

    yield make
    for directory in made:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = start_platform(tmp_path_factory.mktemp("platform") / "home")
    yield running
    stop_platform(running.process)
    assert running.process.returncode == 0, log_text(running.home)


@pytest.fixture(scope="module")
def lambda_client(platform: Platform) -> object:
    return platform.lambda_client()


def make_zip(files: Mapping[str, str | bytes], *, executable: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o755 if name in executable else 0o644) << 16
            archive.writestr(info, text)
    return buffer.getvalue()


def create_function(client: Any, name: str, source: str, **extra: Any) -> None:
    """A python3.11 function whose app.py is ``source``, once it is Active."""
    client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role="arn:aws:iam::000000000000:role/kubelambda",
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": source})},
        Timeout=10,
        **extra,
    )
    client.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )


def metric_value(platform: Platform, name: str, **labels: str) -> float:
    """The sum of ``name``'s series with ``labels`` on the platform's /metrics."""
    text = httpx.get(f"{platform.url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        label_text = line[len(name) + 1 : line.index("}")]
        found = dict(part.split("=", 1) for part in label_text.split(",") if part)
        if all(found.get(key) == f'"{value}"' for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
