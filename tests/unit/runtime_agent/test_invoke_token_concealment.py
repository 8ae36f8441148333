"""The invoke token's comparison and its concealment from the function."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kubelambda_agent import invoke_token

TOKEN = "t" * 40


@pytest.mark.parametrize(
    ("presented", "expected"),
    [(TOKEN, True), (None, False), ("", False), ("t" * 39, False), (TOKEN + "x", False)],
)
def test_matches_only_the_exact_token(presented: str | None, expected: bool) -> None:
    assert invoke_token.matches(TOKEN, presented) is expected


def test_conceal_drops_the_variable_and_closes_the_process_to_its_user() -> None:
    # In a child process: non-dumpable cannot be undone for the test process itself.
    script = (
        "import ctypes, os\n"
        "from kubelambda_agent import invoke_token\n"
        "env = dict(os.environ)\n"
        "invoke_token.conceal(env)\n"
        "libc = ctypes.CDLL(None)\n"
        "print(invoke_token.VARIABLE in os.environ, invoke_token.VARIABLE in env,"
        " libc.prctl(3, 0, 0, 0, 0))\n"  # PR_GET_DUMPABLE
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.pathsep.join(sys.path),
            invoke_token.VARIABLE: TOKEN,
        },
        capture_output=True,
        check=True,
        text=True,
    )
    assert result.stdout.split() == ["False", "False", "0"]
