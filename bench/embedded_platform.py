"""``kubelambda up`` as a subprocess for the end-to-end benchmarks, and a Lambda client to it.

Used by ``peer_compare.py`` and ``scale_from_zero.py``: ``running(scratch)`` starts the
whole embedded platform in a fresh home under ``scratch`` on a free port, with its log
(INFO) in ``scratch/platform.log``, waits until it serves, reads ``kubelambda env``, and
stops the platform on exit. The benchmarks then create their functions with
``lambda_client()`` (boto3), as a user would.

Not named ``platform.py``: the scripts run as files, so ``bench/`` comes first on
``sys.path`` and the module would hide the standard library's ``platform``, which botocore
imports.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

__all__ = ["INSTANCE_CONCURRENCY_TAG", "LOG_NAME", "Platform", "free_port", "running"]

# The platform's log, in the scratch directory.
LOG_NAME = "platform.log"
# The function tag that sets how many invocations one instance runs at once.
INSTANCE_CONCURRENCY_TAG = "kubelambda.io/instance-concurrency"
# Lines of that log shown when a benchmark fails.
_TAIL_LINES = 40


@dataclass(frozen=True, slots=True)
class Platform:
    """The running ``kubelambda up``: its process, home, log, URL and ``kubelambda env``."""

    process: subprocess.Popen[str]
    home: Path
    log_path: Path
    base_url: str
    exports: dict[str, str]

    @property
    def api_key(self) -> str:
        """The bearer key of the invoke path (``KUBELAMBDA_API_KEY``)."""
        return self.exports["KUBELAMBDA_API_KEY"]

    def invoke_url(self, function_name: str) -> str:
        return f"{self.base_url}/2015-03-31/functions/{function_name}/invocations"

    def lambda_client(self) -> Any:
        """A boto3 Lambda client with the platform's keys (boto3's clients are untyped)."""
        return boto3.client(
            "lambda",
            endpoint_url=self.base_url,
            region_name=self.exports["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.exports["AWS_SECRET_ACCESS_KEY"],
        )


@contextlib.contextmanager
def running(scratch: Path) -> Iterator[Platform]:
    """``kubelambda up`` on a free port in ``scratch/home``, serving until the block ends."""
    port = free_port()
    home = scratch / "home"
    environ = {
        **os.environ,
        "KUBELAMBDA_HOME": str(home),
        "KUBELAMBDA_PORT": str(port),
        # The breakdowns read the backend's INFO lines (instance spawned / ready).
        "KUBELAMBDA_LOG_LEVEL": "INFO",
    }
    log_path = scratch / LOG_NAME
    kubelambda = str(Path(sys.executable).with_name("kubelambda"))
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [kubelambda, "up"],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("kubelambda is up at "):
                    break
            else:
                raise RuntimeError(f"kubelambda up exited before serving (see {log_path})")
            shell = subprocess.run(
                [kubelambda, "env"], env=environ, capture_output=True, text=True, check=True
            ).stdout
            exports = dict(
                line.removeprefix("export ").split("=", 1)
                for line in shell.splitlines()
                if line.startswith("export ")
            )
            yield Platform(process, home, log_path, f"http://127.0.0.1:{port}", exports)
        except BaseException:
            # The scratch directory goes with the run: show why it failed first.
            tail = log_path.read_text().splitlines()[-_TAIL_LINES:]
            print("\n".join(["kubelambda up's log ends:", *tail]), file=sys.stderr)
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
