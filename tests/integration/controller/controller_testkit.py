"""What the controller's integration tests share besides fixtures: the test handler, the
region the backend is given, and a zip builder."""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Mapping

__all__ = ["HANDLER", "REGION", "make_zip", "zip_with_entry"]

# Not us-east-1 (a default elsewhere), so a test sees which region reached the function.
REGION = "eu-west-1"

HANDLER = """
import os
import time

INIT_SLEEP = float(os.environ.get("INIT_SLEEP", "0"))
time.sleep(INIT_SLEEP)


def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit"):
        os._exit(3)
    for _ in range(event.get("print_mib", 0) * 1024):
        print("x" * 1023)
    return {
        "function": context.function_name,
        "version": context.function_version,
        "initialization_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"],
        "pid": os.getpid(),
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "module": __file__,
        "region": os.environ["AWS_REGION"],
    }
"""


def make_zip(files: Mapping[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def zip_with_entry(name: str, content: bytes = b"x", *, symlink: bool = False) -> bytes:
    """The test handler plus one entry named ``name`` as given (zipfile does not clean it
    up when writing), a symlink to ``content`` when ``symlink``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER)
        entry = zipfile.ZipInfo(name)
        if symlink:
            entry.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(entry, content)
    return buffer.getvalue()
