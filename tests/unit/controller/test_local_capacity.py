"""The host budget's arithmetic and the order in which deferred starts are admitted."""

from __future__ import annotations

import pytest

from controller.backends.local_capacity import Budget, HostResources, Limits, Usage, Want, plan

ROOMY = Budget(memory_mb=100_000, max_starting=100, max_processes=100)


@pytest.mark.parametrize(
    ("host", "limits", "budget"),
    [
        (HostResources(4096, 2), Limits(), Budget(2048, 2, 40)),
        (HostResources(4096, 2), Limits(memory_share=0.25), Budget(1024, 2, 40)),
        (HostResources(4096, 4), Limits(starting_at_once=1), Budget(2048, 1, 80)),
        (HostResources(4096, 2), Limits(processes_per_core=3), Budget(2048, 2, 6)),
        # A host that reports no cores still gets one.
        (HostResources(1000, 0), Limits(), Budget(500, 1, 20)),
    ],
    ids=["defaults", "memory share", "starting cap", "processes per core", "no cores"],
)
def test_budget_for_host(host: HostResources, limits: Limits, budget: Budget) -> None:
    assert Budget.for_host(host, limits) == budget


def test_an_instance_larger_than_the_whole_memory_budget_never_fits() -> None:
    budget = Budget(memory_mb=1024, max_starting=2, max_processes=16)

    assert (budget.fits_at_all(1024), budget.fits_at_all(1025)) == (True, False)


def test_the_worked_example_of_the_module() -> None:
    budget = Budget(memory_mb=2048, max_starting=2, max_processes=40)
    usage = Usage(memory_mb=1280, starting=0, processes=20)

    assert plan(budget, usage, [Want("f", memory_mb=128, missing=20, since=0.0)]) == {"f": 2}
    assert plan(budget, usage, [Want("f", 128, missing=20, since=0.0, concurrency=16)]) == {"f": 1}


@pytest.mark.parametrize(
    ("budget", "usage", "granted"),
    [
        (Budget(memory_mb=1000, max_starting=10, max_processes=20), Usage(600, 0, 6), 3),
        (Budget(memory_mb=10_000, max_starting=3, max_processes=20), Usage(0, 2, 4), 1),
        (Budget(memory_mb=10_000, max_starting=10, max_processes=8), Usage(0, 0, 4), 2),
        (Budget(memory_mb=10_000, max_starting=10, max_processes=8), Usage(0, 0, 9), 0),
    ],
    ids=["memory", "starting", "processes (spares included)", "over the cap already"],
)
def test_each_limit_bounds_the_starts(budget: Budget, usage: Usage, granted: int) -> None:
    grants = plan(budget, usage, [Want("f", memory_mb=128, missing=6, since=0.0)])

    assert grants.get("f", 0) == granted


def test_the_oldest_want_goes_first_whatever_the_order_given() -> None:
    budget = Budget(memory_mb=10_000, max_starting=3, max_processes=100)
    wants = [
        Want("new", memory_mb=128, missing=2, since=30.0),
        Want("old", memory_mb=128, missing=2, since=10.0),
        Want("mid", memory_mb=128, missing=2, since=20.0),
    ]

    assert plan(budget, Usage(), wants) == {"old": 2, "mid": 1}


def test_nobody_overtakes_a_want_that_waits_for_memory() -> None:
    budget = Budget(memory_mb=1024, max_starting=10, max_processes=100)
    wants = [
        Want("large", memory_mb=1024, missing=1, since=1.0),
        Want("small", memory_mb=128, missing=1, since=2.0),
    ]

    assert plan(budget, Usage(memory_mb=512), wants) == {}


def test_provisioned_instances_go_before_older_on_demand_ones() -> None:
    budget = Budget(memory_mb=10_000, max_starting=2, max_processes=100)
    wants = [
        Want("on-demand", memory_mb=128, missing=3, since=1.0),
        Want("warm", memory_mb=128, missing=3, since=5.0, provisioned=1),
    ]

    assert plan(budget, Usage(), wants) == {"warm": 1, "on-demand": 1}


def test_a_want_granted_nothing_is_left_out() -> None:
    budget = Budget(memory_mb=10_000, max_starting=1, max_processes=100)
    wants = [Want("a", 128, 1, 1.0), Want("b", 128, 1, 2.0)]

    assert plan(budget, Usage(), wants) == {"a": 1}


@pytest.mark.parametrize(
    ("concurrency", "free_processes", "granted"),
    [(1, 7, 3), (4, 9, 1), (4, 10, 2), (16, 16, 0), (16, 34, 2)],
)
def test_an_instance_takes_its_agent_and_a_runtime_per_unit_of_concurrency(
    concurrency: int, free_processes: int, granted: int
) -> None:
    budget = Budget(memory_mb=100_000, max_starting=10, max_processes=40)
    usage = Usage(processes=40 - free_processes)
    want = Want("f", memory_mb=128, missing=6, since=0.0, concurrency=concurrency)

    assert plan(budget, usage, [want]).get("f", 0) == granted


def test_an_instance_larger_than_the_process_budget_runs_alone() -> None:
    budget = Budget(memory_mb=100_000, max_starting=10, max_processes=16)
    want = Want("wide", memory_mb=128, missing=2, since=0.0, concurrency=64)

    assert budget.processes_of(64) == 16
    assert plan(budget, Usage(), [want]) == {"wide": 1}
    assert plan(budget, Usage(processes=1), [want]) == {}


def test_a_wide_want_that_does_not_fit_holds_back_the_narrow_ones_behind_it() -> None:
    budget = Budget(memory_mb=100_000, max_starting=10, max_processes=32)
    wants = [
        Want("wide", memory_mb=128, missing=1, since=1.0, concurrency=16),
        Want("narrow", memory_mb=128, missing=1, since=2.0),
    ]

    assert plan(budget, Usage(processes=20), wants) == {}
    assert plan(budget, Usage(processes=13), wants) == {"wide": 1, "narrow": 1}


def test_environments_placed_in_agents_with_room_need_no_start_and_one_process_each() -> None:
    budget = Budget(memory_mb=10_000, max_starting=1, max_processes=8)
    usage = Usage(memory_mb=0, starting=1, processes=4)
    hosted = Want("f", memory_mb=128, missing=6, since=0.0, per_start=16, room=3)

    # No start is free: only the three with room fit, a runtime each (4 + 3 <= 8).
    assert plan(budget, usage, [hosted]) == {"f": 3}


def test_an_agent_started_for_hosted_environments_takes_the_next_ones_too() -> None:
    budget = Budget(memory_mb=10_000, max_starting=1, max_processes=100)
    hosted = Want("f", memory_mb=128, missing=5, since=0.0, per_start=3)

    # One start: an agent for three environments; the other two would need a second.
    assert plan(budget, Usage(), [hosted]) == {"f": 3}
    assert plan(Budget(10_000, 2, 100), Usage(), [hosted]) == {"f": 5}


def test_hosted_environments_count_their_memory_and_their_agents_process() -> None:
    hosted = Want("f", memory_mb=128, missing=5, since=0.0, per_start=16)

    # Two environments: 256 MB; and the agent, then a runtime each: 1 + 2 processes.
    assert plan(Budget(300, 5, 100), Usage(), [hosted]) == {"f": 2}
    assert plan(Budget(10_000, 5, 3), Usage(), [hosted]) == {"f": 2}


def test_environments_of_concurrency_16_placed_in_an_agent_cost_their_runtimes() -> None:
    budget = Budget(memory_mb=10_000, max_starting=2, max_processes=40)
    hosted = Want("f", memory_mb=128, missing=4, since=0.0, concurrency=16, per_start=4)

    # One start: the agent and 16 runtimes (17), then 16 more placed in it (33); a third
    # environment's 16 would make 49, beyond 40, placed or started.
    assert plan(budget, Usage(), [hosted]) == {"f": 2}
    assert plan(budget, Usage(processes=8), [hosted]) == {"f": 1}


def test_provisioned_environments_start_an_agent_each_even_with_room() -> None:
    budget = Budget(memory_mb=10_000, max_starting=2, max_processes=100)
    want = Want("f", memory_mb=128, missing=4, since=0.0, provisioned=3, per_start=16, room=5)

    # Two starts for the provisioned three: the third waits, and so does the rest.
    assert plan(budget, Usage(), [want]) == {"f": 2}


def test_a_hosting_instance_counts_a_runtime_per_environment() -> None:
    budget = Budget(memory_mb=10_000, max_starting=2, max_processes=40)

    assert (budget.processes_of(1, environments=5), budget.processes_of(2, 30)) == (6, 40)
