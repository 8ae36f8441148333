"""The built-in python bootstrap behind the real agent: results, context, environment, logs."""

from __future__ import annotations

import json

from agent_harness import FUNCTION_ARN, StartAgent


def test_returns_the_handler_result_as_json(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)

    result = agent.invoke({"hello": "world", "n": [1, 2]})

    assert result.status == 200
    assert result.json == {"hello": "world", "n": [1, 2]}
    assert result.function_error is None
    assert result.headers["Content-Type"] == "application/json"


def test_none_result_is_json_null(start_agent: StartAgent, echo_function: dict[str, str]) -> None:
    agent = start_agent(echo_function)

    result = agent.invoke({"action": "print", "text": "x"})

    assert result.body == b"null"


def test_context_carries_lambda_fields(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, timeout=5)
    # The gateway has decoded the caller's base64 already: the agent gets the JSON.
    client_context = json.dumps({"custom": {"k": "v"}})

    result = agent.invoke(
        {"action": "context"},
        request_id="req-ctx-1",
        headers={
            "Kubelambda-Client-Context": client_context,
            "Kubelambda-Trace-Id": "Root=1-a-b",
            "Kubelambda-Cognito-Identity": json.dumps({"cognitoIdentityId": "id-1"}),
        },
    )

    context = result.json
    assert isinstance(context, dict)
    assert context.pop("remaining") in range(3000, 5001)
    assert context == {
        "aws_request_id": "req-ctx-1",
        "invoked_function_arn": FUNCTION_ARN,
        "function_name": "echo",
        "function_version": "$LATEST",
        "memory_limit_in_mb": "256",
        "log_group_name": "/aws/lambda/echo",
        "log_stream_name": "2026/01/01/[$LATEST]abc",
        "custom": {"k": "v"},
        "identity": "id-1",
        "trace": "Root=1-a-b",
        "cwd": context["cwd"],
        "python": [3, 11],
    }
    assert context["cwd"].endswith("/task0")


def test_runtime_environment_has_lambda_variables_and_no_agent_settings(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, env={"USER_SETTING": "on"})

    env = agent.invoke({"action": "env"}).json

    assert isinstance(env, dict)
    assert env["USER_SETTING"] == "on"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["TZ"] == ":UTC"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert "LAMBDA_RUNTIME_DIR" in env
    assert not [name for name in env if name.startswith("KUBELAMBDA_AGENT_")]
    assert "AWS_LAMBDA_MAX_CONCURRENCY" not in env


def test_print_reaches_the_tail_log_between_start_and_report(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)

    result = agent.invoke(
        {"action": "print", "text": "hello from the handler"}, request_id="req-tail-1", tail=True
    )

    lines = result.log_tail.splitlines()
    assert lines[0] == "START RequestId: req-tail-1 Version: $LATEST"
    assert lines[1] == "hello from the handler"
    assert lines[2] == "END RequestId: req-tail-1"
    assert lines[3].startswith("REPORT RequestId: req-tail-1\tDuration: ")
    assert "\tMemory Size: 256 MB\tMax Memory Used: " in lines[3]


def test_tail_log_is_absent_unless_asked(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)

    result = agent.invoke({"action": "print", "text": "quiet"})

    assert "Kubelambda-Log-Result" not in result.headers


def test_agent_stdout_has_the_invocation_log(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)

    agent.invoke({"action": "print", "text": "to stdout"}, request_id="req-out-1")
    agent.terminate()

    log = agent.log()
    start = log.index("START RequestId: req-out-1 Version: $LATEST\n")
    assert log.index("to stdout\n") > start
    assert log.index("END RequestId: req-out-1\n") > log.index("to stdout\n")
    assert "REPORT RequestId: req-out-1\t" in log


def test_logging_uses_lambda_format_with_request_id(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)

    result = agent.invoke({"action": "log", "text": "logged"}, request_id="req-log-1", tail=True)

    line = result.log_tail.splitlines()[1]
    level, stamp, request_id, message = line.split("\t")
    assert (level, request_id, message) == ("[INFO]", "req-log-1", "logged")
    assert stamp.endswith("Z")


def test_a_provisioned_instance_initialised_ahead_reports_no_init_duration(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    """Provisioned concurrency initialises before any invocation arrives: like Lambda,
    no REPORT line of such an instance carries Init Duration, and the gateway counts no
    cold start (the header it reads is absent)."""
    agent = start_agent(
        echo_function, env={"AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency"}
    )

    first = agent.invoke({"action": "env"}, tail=True)

    assert "Kubelambda-Init-Duration-Ms" not in first.headers
    assert "Init Duration" not in first.log_tail
    assert "\tDuration: " in first.log_tail.splitlines()[-1]


def test_first_invocation_reports_init_duration_and_later_ones_do_not(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)

    first = agent.invoke({}, tail=True)
    second = agent.invoke({}, tail=True)

    assert float(first.headers["Kubelambda-Init-Duration-Ms"]) > 0
    assert "\tInit Duration: " in first.log_tail.splitlines()[-1]
    assert "Kubelambda-Init-Duration-Ms" not in second.headers
    assert "Init Duration" not in second.log_tail
    assert float(second.headers["Kubelambda-Duration-Ms"]) > 0
    assert int(second.headers["Kubelambda-Max-Memory-Used-Mb"]) > 0


def test_handler_exception_returns_lambda_error_json(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)

    result = agent.invoke({"action": "fail", "text": "it broke"}, request_id="req-err-1", tail=True)

    assert result.status == 200
    assert result.function_error == "Unhandled"
    error = result.json
    assert isinstance(error, dict)
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "it broke"
    assert error["requestId"] == "req-err-1"
    assert any('app.py", line' in frame and "in handler" in frame for frame in error["stackTrace"])
    assert "[ERROR] ValueError: it broke" in result.log_tail


def test_runtime_serves_the_next_invocation_after_an_error(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)
    pid = agent.invoke({"action": "pid"}).json

    agent.invoke({"action": "fail"})

    assert agent.invoke({"action": "pid"}).json == pid


def test_a_runtime_serving_a_trace_id_per_invocation_keeps_its_heap(
    start_agent: StartAgent,
) -> None:
    # Set through os.environ, each trace id stayed in glibc's heap for good (setenv's):
    # 140 bytes an invocation, until the function's MemorySize had the runtime killed.
    agent = start_agent(
        {
            "app.py": """
                import ctypes

                class MallInfo2(ctypes.Structure):
                    _fields_ = [
                        (name, ctypes.c_size_t)
                        for name in (
                            "arena", "ordblks", "smblks", "hblks", "hblkhd",
                            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
                        )
                    ]

                mallinfo2 = ctypes.CDLL(None).mallinfo2
                mallinfo2.restype = MallInfo2

                def handler(event, context):
                    return mallinfo2().uordblks
            """
        }
    )

    def invoke(n: int) -> int:
        trace_id = f"Root=1-{n:08x}-{n:024x};Parent={n:016x};Sampled=0"
        in_use = agent.invoke({}, headers={"Kubelambda-Trace-Id": trace_id}).json
        assert isinstance(in_use, int)
        return in_use

    before = invoke(0)
    for n in range(1, 2_000):
        invoke(n)

    assert invoke(2_000) - before < 100 * 1024


def test_task_root_shadows_the_agent_modules(start_agent: StartAgent) -> None:
    # The agent has a module named config; the function's own must win.
    agent = start_agent(
        {
            "config.py": "SOURCE = 'function'\n",
            "app.py": "import config\n\ndef handler(event, context):\n    return config.SOURCE\n",
        }
    )

    assert agent.invoke({}).json == "function"


def test_task_root_comes_first_with_pythonsafepath(start_agent: StartAgent) -> None:
    agent = start_agent(
        {"app.py": "import sys\n\ndef handler(event, context):\n    return sys.path[0]\n"},
        env={"PYTHONSAFEPATH": "1"},
    )

    assert str(agent.invoke({}).json).endswith("/task0")


def test_output_without_a_final_newline_stays_with_its_invocation(start_agent: StartAgent) -> None:
    agent = start_agent(
        {
            "app.py": """
                def handler(event, context):
                    print("no newline", end="")
                    return 1
            """
        }
    )

    lines = agent.invoke({}, request_id="req-partial", tail=True).log_tail.splitlines()

    assert lines[1:3] == ["no newline", "END RequestId: req-partial"]


def test_stdout_and_stderr_lines_both_reach_the_log(start_agent: StartAgent) -> None:
    agent = start_agent(
        {
            "app.py": """
                import sys

                def handler(event, context):
                    print("to stdout")
                    print("to stderr", file=sys.stderr)
                    return 1
            """
        }
    )

    lines = agent.invoke({}, tail=True).log_tail.splitlines()

    assert lines[1:3] == ["to stdout", "to stderr"]


def test_large_event_and_result_pass_through_whole(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)
    event = {"blob": "y" * (5 * 1024 * 1024)}

    result = agent.invoke(event)

    assert result.function_error is None
    assert result.json == event
