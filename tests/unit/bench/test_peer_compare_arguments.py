"""The peer benchmark refuses arguments wrk cannot run before it starts anything: a slice
is whole seconds (wrk takes no fraction), at least one, and the lead-in is not negative."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "peer_compare.py"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--seconds", "7.5"], "invalid int value: '7.5'"),
        (["--lead-in", "0.5"], "invalid int value: '0.5'"),
        (["--seconds", "0"], "--seconds and --rounds must be at least 1"),
        (["--rounds", "0"], "--seconds and --rounds must be at least 1"),
        (["--lead-in", "-1"], "--lead-in at least 0"),
    ],
)
def test_arguments_wrk_cannot_run_are_refused_before_the_platform_starts(
    arguments: list[str], message: str, tmp_path: Path
) -> None:
    # Were they taken, the platform would start and the benchmark run for minutes (or
    # fail in its first slice): the timeout stands for that.
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert message in done.stderr
    assert not list(tmp_path.iterdir())
