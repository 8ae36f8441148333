"""Failures the agent detects itself: timeouts, runtime exits, oversized responses."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from agent_harness import StartAgent
from kubelambda_agent import protocol


def test_timeout_answers_promptly_with_lambda_timeout_error(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, timeout=1)

    began = time.monotonic()
    result = agent.invoke({"action": "sleep", "seconds": 10}, request_id="req-slow", tail=True)
    elapsed = time.monotonic() - began

    assert 1.0 <= elapsed < 2.0
    assert result.status == 200
    assert result.function_error == "Unhandled"
    assert result.json == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: req-slow Error: Task timed out after 1.00 seconds",
    }
    assert "req-slow Task timed out after 1.00 seconds" in result.log_tail


def test_timeout_replaces_the_runtime_and_the_next_call_is_cold(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, timeout=1)
    before = agent.invoke({"action": "pid"}).json
    agent.invoke({"action": "sleep", "seconds": 10})

    agent.wait_idle()
    after = agent.invoke({"action": "pid"}, tail=True)

    assert after.json != before
    assert float(after.headers["Kubelambda-Init-Duration-Ms"]) > 0
    assert "\tInit Duration: " in after.log_tail


def test_timed_out_runtime_is_killed(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, timeout=1)
    pid = agent.invoke({"action": "pid"}).json
    assert isinstance(pid, int)

    agent.invoke({"action": "sleep", "seconds": 10})
    agent.wait_idle()

    # Gone, and reaped: a zombie would still have its /proc entry.
    assert not os.path.exists(f"/proc/{pid}")


def test_runtime_exit_gives_exit_error_and_a_new_runtime(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)
    before = agent.invoke({"action": "pid"}).json

    result = agent.invoke({"action": "exit", "code": 3}, request_id="req-exit")
    agent.wait_idle()
    after = agent.invoke({"action": "pid"})

    assert result.function_error == "Unhandled"
    assert result.json == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: req-exit Error: Runtime exited with error: exit status 3",
    }
    assert after.json != before
    assert "Kubelambda-Init-Duration-Ms" in after.headers


def test_response_over_the_limit_is_refused(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)

    result = agent.invoke({"action": "big", "size": 6 * 1024 * 1024 + 200})

    assert result.function_error == "Unhandled"
    assert result.json == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
        "(6291556 bytes).",
    }


def test_response_just_under_the_limit_is_returned(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)
    size = 6 * 1024 * 1024  # plus two quote characters: still within 6 MiB + 100 bytes

    result = agent.invoke({"action": "big", "size": size})

    assert result.function_error is None
    assert len(result.body) == size + 2


def test_runtime_keeps_serving_after_a_refused_response(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)

    agent.invoke({"action": "big", "size": 7 * 1024 * 1024})
    agent.wait_idle()

    assert agent.invoke({"n": 1}).json == {"n": 1}


def test_a_function_writing_garbage_on_its_channel_only_loses_its_own_runtime(
    start_agent: StartAgent,
) -> None:
    # The function's code shares the bootstrap's process, and so its channel to the
    # agent (runtime_channel): it can write anything there. The agent closes the channel
    # on the first frame it does not know; the runtime then exits, the invocation gets
    # the exit error, and the next one runs on a new runtime.
    agent = start_agent(
        {
            "app.py": """
                import os
                import socket

                def handler(event, context):
                    if event.get("garbage"):
                        for fd in map(int, os.listdir("/proc/self/fd")):
                            try:
                                sock = socket.socket(fileno=fd)
                            except OSError:
                                continue
                            if sock.family == socket.AF_UNIX:
                                sock.sendall(b"GET / HTTP/1.1\\r\\n\\r\\n")
                            sock.detach()
                    return os.getpid()
            """
        }
    )
    before = agent.invoke({}).json

    spoiled = agent.invoke({"garbage": True}, request_id="req-garbage")
    agent.wait_idle()
    after = agent.invoke({})

    assert spoiled.function_error == "Unhandled"
    assert spoiled.json["errorType"] == "Runtime.ExitError"
    assert after.function_error is None
    assert after.json != before


def test_invocation_while_the_runtime_restarts_is_refused_as_busy(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, timeout=1)
    agent.invoke({"action": "sleep", "seconds": 10})

    # The replacement runtime needs tens of milliseconds to start; this comes at once.
    result = agent.invoke({})

    assert result.status == 503
    assert result.headers["Kubelambda-Agent-Busy"] == "1"


def test_runtime_that_dies_between_invocations_is_replaced(start_agent: StartAgent) -> None:
    agent = start_agent(
        {
            "app.py": """
                import os
                import threading

                def handler(event, context):
                    if event.get("die"):
                        threading.Timer(0.2, os._exit, (0,)).start()
                    return os.getpid()
            """
        }
    )
    before = agent.invoke({"die": True}).json

    time.sleep(0.5)
    agent.wait_idle()
    after = agent.invoke({})

    assert after.json != before
    assert after.function_error is None
    assert "Kubelambda-Init-Duration-Ms" in after.headers


def test_runtime_that_exits_before_serving_fails_the_next_invocation(
    start_agent: StartAgent,
) -> None:
    # A broken custom runtime: it polls /next once, gives up after 0.2 s, and exits.
    bootstrap = f"""#!{sys.executable}
import http.client, os, sys
conn = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"], timeout=0.2)
try:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    conn.getresponse()
except OSError:
    sys.exit(5)
"""
    agent = start_agent({"bootstrap": bootstrap}, runtime="provided")
    time.sleep(0.5)

    result = agent.invoke({}, request_id="req-gave-up")

    assert result.function_error == "Unhandled"
    assert result.json == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: req-gave-up Error: Runtime exited with error: exit status 5",
    }


BACKGROUND_FUNCTION = {
    "app.py": (
        "import os, subprocess, time\n"
        "def handler(event, context):\n"
        "    if event['how'] == 'new-session':\n"
        "        child = subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
        "        pid = child.pid\n"
        "    else:  # a double fork: the grandchild is abandoned by its parent at once\n"
        "        read, write = os.pipe()\n"
        "        if os.fork() == 0:\n"
        "            os.setsid()\n"
        "            grandchild = subprocess.Popen(['sleep', '1000'])\n"
        "            os.write(write, str(grandchild.pid).encode())\n"
        "            os._exit(0)\n"
        "        pid = int(os.read(read, 32))\n"
        "    if event.get('then') == 'hang':\n"
        "        print('started', pid, flush=True)\n"
        "        time.sleep(60)\n"
        "    return pid\n"
    )
}


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":  # killed, waiting for its parent to collect it
            return True
        time.sleep(0.05)
    return False


def test_a_child_in_its_own_session_dies_with_the_timed_out_invocation(
    start_agent: StartAgent,
) -> None:
    agent = start_agent(BACKGROUND_FUNCTION, timeout=1)
    result = agent.invoke({"how": "new-session", "then": "hang"}, tail=True)
    assert result.json["errorType"] == "Sandbox.Timedout"
    pid = int(result.log_tail.split("started ")[1].split()[0])
    assert _gone_within(pid, 5)


def test_nothing_the_function_started_outlives_its_instance(start_agent: StartAgent) -> None:
    agent = start_agent(BACKGROUND_FUNCTION, timeout=5)
    pids = [agent.invoke({"how": how}).json for how in ("new-session", "double-fork")]
    assert all(isinstance(pid, int) and os.path.exists(f"/proc/{pid}") for pid in pids)
    agent.terminate()
    assert all(_gone_within(pid, 5) for pid in pids)


MEMORY_FUNCTION = {
    "app.py": (
        "import os\n"
        "def handler(event, context):\n"
        "    held = bytearray(event['mb'] * 1024 * 1024)\n"
        "    return {'held': len(held) // (1024 * 1024), 'pid': os.getpid()}\n"
    )
}


def test_memory_past_memory_size_ends_the_invocation_as_lambda_does(
    start_agent: StartAgent,
) -> None:
    agent = start_agent(MEMORY_FUNCTION, env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128"})
    within = agent.invoke({"mb": 40})
    assert within.json["held"] == 40

    over = agent.invoke({"mb": 1024}, request_id="req-oom", tail=True)

    assert over.function_error == "Unhandled"
    assert over.json == {
        "errorType": "Runtime.OutOfMemory",
        "errorMessage": "RequestId: req-oom Error: Runtime exited with error: signal: killed",
    }
    assert "REPORT RequestId: req-oom" in over.log_tail
    agent.wait_idle()
    # A fresh runtime serves the next invocation.
    after = agent.invoke({"mb": 1})
    assert after.json["pid"] != within.json["pid"]


# Takes ``mb`` in two halves, a pause between them, as a handler that grows does.
GROWING_FUNCTION = {
    "app.py": (
        "import time\n"
        "def handler(event, context):\n"
        "    first = bytearray(event['mb'] // 2 * 1024 * 1024)\n"
        "    time.sleep(event['pause'])\n"
        "    second = bytearray(event['mb'] // 2 * 1024 * 1024)\n"
        "    return len(first) + len(second)\n"
    )
}


def test_the_report_gives_the_peak_the_invocation_reached(start_agent: StartAgent) -> None:
    agent = start_agent(GROWING_FUNCTION, env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"})
    small = agent.invoke({"mb": 2, "pause": 0})
    # Past the age a REPORT's peak may have (``slot.MEMORY_CHECK_SECONDS``).
    time.sleep(0.2)

    # The memory check reads the peak while only the first half is held.
    large = agent.invoke({"mb": 200, "pause": 0.12}, tail=True)

    small_peak = int(small.headers[protocol.MAX_MEMORY_USED_MB])
    large_peak = int(large.headers[protocol.MAX_MEMORY_USED_MB])
    assert small_peak < 100
    assert large_peak >= 200
    assert f"\tMax Memory Used: {large_peak} MB" in large.log_tail
