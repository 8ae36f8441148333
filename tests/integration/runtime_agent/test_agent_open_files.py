"""Open files: the agent takes what the host allows, a function gets Lambda's 1,024."""

from __future__ import annotations

import resource

from agent_harness import StartAgent

# Reports its limits, tries to raise them, and opens descriptors until refused.
LIMITS_FUNCTION = {
    "app.py": """
        import os
        import resource


        def handler(event, context):
            limits = list(resource.getrlimit(resource.RLIMIT_NOFILE))
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
                raised = "raised"
            except (ValueError, OSError) as exc:
                raised = type(exc).__name__
            opened = []
            try:
                while len(opened) < 5000:
                    opened.append(os.open("/dev/null", os.O_RDONLY))
                refused = None
            except OSError as exc:
                refused = exc.errno
            finally:
                for fd in opened:
                    os.close(fd)
            return {"limits": limits, "raise": raised, "opened": len(opened), "refused": refused}
    """
}


def _limits(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as limits:
        line = next(line for line in limits if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def test_an_agent_started_with_a_low_soft_limit_raises_it_to_the_hard_one(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    agent = start_agent(echo_function, open_files_soft_limit=256)

    assert _limits(agent.process.pid) == (hard, hard)


def test_a_function_gets_lambdas_1024_open_files_and_cannot_raise_them(
    start_agent: StartAgent,
) -> None:
    agent = start_agent(LIMITS_FUNCTION, open_files_soft_limit=256)

    result = agent.invoke({}).json

    assert isinstance(result, dict)
    assert result["limits"] == [1024, 1024]
    assert result["raise"] == "ValueError"
    assert result["refused"] == 24  # EMFILE
    # All but the few the runtime holds open itself.
    assert 1000 < result["opened"] < 1024
