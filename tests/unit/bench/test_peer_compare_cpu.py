"""The peer benchmark's CPU count per role (bench/peer_compare.py, ``_cpu_growth``): a
process stopped between two snapshots keeps its time in its role through its parent's
reaped time, instead of leaving the sum."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
GATEWAY, ZYGOTE, AGENT = 100, 101, 102


@pytest.fixture
def peer_compare(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # The benchmarks import each other by their bare names, as scripts run from bench/.
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("peer_compare")


def snapshot(
    peer_compare: ModuleType, **processes: tuple[int, str, float, float]
) -> dict[int, Any]:
    return {
        int(pid.removeprefix("p")): peer_compare._Process(
            parent=parent, role=role, own=own, reaped=reaped
        )
        for pid, (parent, role, own, reaped) in processes.items()
    }


def test_live_processes_count_their_own_growth(peer_compare: ModuleType) -> None:
    before = snapshot(
        peer_compare,
        p100=(1, "gateway", 10.0, 0.0),
        p102=(ZYGOTE, "agents", 2.0, 0.0),
        p103=(AGENT, "runtimes", 3.0, 0.0),
    )
    after = snapshot(
        peer_compare,
        p100=(1, "gateway", 10.5, 0.0),
        p102=(ZYGOTE, "agents", 2.25, 0.0),
        p103=(AGENT, "runtimes", 3.75, 0.0),
    )

    assert peer_compare._cpu_growth(before, after) == {
        "gateway": 0.5,
        "agents": 0.25,
        "runtimes": 0.75,
    }


def test_a_runtime_stopped_in_between_keeps_its_time_with_the_runtimes(
    peer_compare: ModuleType,
) -> None:
    before = snapshot(
        peer_compare,
        p102=(ZYGOTE, "agents", 2.0, 0.0),
        p103=(AGENT, "runtimes", 3.0, 0.0),
        p104=(AGENT, "runtimes", 5.0, 0.0),
    )
    # 104 ran another 0.5 s and exited; its agent reaped it: 5.5 s in its cutime.
    after = snapshot(
        peer_compare,
        p102=(ZYGOTE, "agents", 2.25, 5.5),
        p103=(AGENT, "runtimes", 3.5, 0.0),
    )

    assert peer_compare._cpu_growth(before, after) == {
        "gateway": 0.0,
        "agents": 0.25,
        "runtimes": 1.0,
    }


def test_a_spare_agent_stopped_in_between_keeps_its_time_with_the_agents(
    peer_compare: ModuleType,
) -> None:
    before = snapshot(
        peer_compare,
        p100=(1, "gateway", 10.0, 0.0),
        p101=(GATEWAY, "agents", 1.0, 0.0),
        p102=(ZYGOTE, "agents", 0.5, 0.0),
    )
    after = snapshot(
        peer_compare,
        p100=(1, "gateway", 10.0, 0.0),
        p101=(GATEWAY, "agents", 1.0, 0.75),
    )

    assert peer_compare._cpu_growth(before, after) == {
        "gateway": 0.0,
        "agents": 0.25,
        "runtimes": 0.0,
    }


def test_no_platform_no_figures(peer_compare: ModuleType) -> None:
    assert peer_compare._cpu_growth({}, {}) == {}
