"""Scheduling: a function's runtime, and what it starts, run as batch work; the agent not."""

from __future__ import annotations

import os

from agent_harness import StartAgent

# Reports the scheduling policy of its runtime and of a process the handler starts.
POLICY_FUNCTION = {
    "app.py": """
        import os
        import subprocess
        import sys


        def handler(event, context):
            child = subprocess.run(
                [sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"],
                capture_output=True,
                text=True,
                check=True,
            )
            return {"runtime": os.sched_getscheduler(0), "child": int(child.stdout)}
    """
}


def test_a_function_runs_under_batch_scheduling_and_the_agent_does_not(
    start_agent: StartAgent,
) -> None:
    agent = start_agent(POLICY_FUNCTION)

    result = agent.invoke({}).json

    assert result == {"runtime": os.SCHED_BATCH, "child": os.SCHED_BATCH}
    assert os.sched_getscheduler(agent.process.pid) == os.SCHED_OTHER
