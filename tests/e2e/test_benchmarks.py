"""The benchmarks that compose the platform's parts themselves still run.

``bench/agent_direct.py`` drives an agent by its own protocol and
``bench/invoke_overhead.py`` builds the gateway from the launch package's builders: both
break when those interfaces change, and did twice unnoticed (the invoke token, the event
producer). Each runs here with the shortest settings, and its JSON must hold figures of
real invocations. The benchmarks over ``kubelambda up`` and boto3 use only public
interfaces and are left to ``make bench``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from checkout import AGENT_SOURCE, ROOT


def run_benchmark(script: str, *arguments: str, out: Path) -> dict[str, Any]:
    environ = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{AGENT_SOURCE}"}
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{script}.py"), *arguments, "--out", str(out)],
        env=environ,
        check=True,
        capture_output=True,
        timeout=180,
    )
    assert (out / f"{script}.png").stat().st_size > 0
    figures: dict[str, Any] = json.loads((out / f"{script}.json").read_text())
    return figures


def test_the_direct_agent_benchmark_spawns_and_invokes(tmp_path: Path) -> None:
    figures = run_benchmark("agent_direct", "--spawns", "1", "--seconds", "0.2", out=tmp_path)

    assert figures["spawn"]["spawns"] == 1
    for row in figures["invoke"]:
        assert row["requests"] > 0 and row["refused"] == 0


def test_the_gateway_overhead_benchmark_invokes_both_paths(tmp_path: Path) -> None:
    figures = run_benchmark("invoke_overhead", "--seconds", "0.2", "--rounds", "1", out=tmp_path)

    for row in figures["results"]:
        for path in ("direct", "gateway"):
            assert row[path]["requests"] > 0 and row[path]["failures"] == 0
