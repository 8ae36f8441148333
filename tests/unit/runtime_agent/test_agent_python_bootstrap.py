"""The pure parts of the python bootstrap: handler loading, context, errors, JSON."""

from __future__ import annotations

import ctypes
import decimal
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubelambda_agent import python_bootstrap as bootstrap


@pytest.fixture
def task_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("kl_boot_ok", "kl_boot_nohandler", "kl_boot_raises"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    (tmp_path / "kl_boot_ok.py").write_text("def handler(event, context):\n    return event\n")
    (tmp_path / "kl_boot_nohandler.py").write_text("X = 1\n")
    (tmp_path / "kl_boot_raises.py").write_text("raise ImportError('inner dependency')\n")
    return tmp_path


@pytest.fixture
def trace() -> Iterator[bootstrap.TraceIdVariable]:
    variable = bootstrap.TraceIdVariable()
    yield variable
    # Out of the environment before the strings it put there are dropped with it.
    os.environ.pop("_X_AMZN_TRACE_ID", None)


def test_load_handler_finds_the_function(task_root: Path) -> None:
    handler = bootstrap.load_handler("kl_boot_ok.handler")

    assert handler({"a": 1}, None) == {"a": 1}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "error_type", "message"),
    [
        ("nodots", "Runtime.MalformedHandlerName", "Bad handler 'nodots'"),
        ("kl_boot_absent.handler", "Runtime.ImportModuleError", "Unable to import module"),
        ("kl_boot_raises.handler", "Runtime.ImportModuleError", "inner dependency"),
        ("kl_boot_nohandler.handler", "Runtime.HandlerNotFound", "Handler 'handler' missing"),
        ("sys.handler", "Runtime.BuiltInModuleConflict", "Cannot use built-in module sys"),
    ],
)
def test_load_handler_failures_carry_lambda_error_types(
    task_root: Path, spec: str, error_type: str, message: str
) -> None:
    with pytest.raises(bootstrap.InitError) as caught:
        bootstrap.load_handler(spec)

    assert caught.value.error_type == error_type
    assert message in caught.value.message


def test_remaining_time_counts_down_to_zero() -> None:
    now_ms = int(time.time() * 1000)
    live = bootstrap.LambdaContext(
        request_id="r",
        function_arn="a",
        deadline_ms=now_ms + 5000,
        client_context=None,
        identity=None,
    )
    expired = bootstrap.LambdaContext(
        request_id="r",
        function_arn="a",
        deadline_ms=now_ms - 5000,
        client_context=None,
        identity=None,
    )

    assert 4000 < live.get_remaining_time_in_millis() <= 5000
    assert expired.get_remaining_time_in_millis() == 0


def test_contexts_carry_the_function_described_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("function_name", "function_version", "memory_limit_in_mb"):
        monkeypatch.setattr(bootstrap.LambdaContext, name, None)
    for name in ("log_group_name", "log_stream_name"):
        monkeypatch.setattr(bootstrap.LambdaContext, name, None)
    bootstrap.LambdaContext.describe_function(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "f",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/f",
            "AWS_LAMBDA_LOG_STREAM_NAME": "stream",
        }
    )
    context = bootstrap.LambdaContext(
        request_id="r", function_arn="a", deadline_ms=0, client_context=None, identity=None
    )

    assert (
        context.function_name,
        context.function_version,
        context.memory_limit_in_mb,
        context.log_group_name,
        context.log_stream_name,
    ) == ("f", "$LATEST", "256", "/aws/lambda/f", "stream")


def test_client_context_exposes_client_custom_and_env() -> None:
    context = bootstrap.ClientContext(
        {"client": {"app_title": "app"}, "custom": {"k": "v"}, "env": {"platform": "x"}}
    )

    assert context.client is not None and context.client.app_title == "app"
    assert (context.custom, context.env) == ({"k": "v"}, {"platform": "x"})


def test_to_json_writes_decimals_as_numbers() -> None:
    body = bootstrap.to_json({"int": decimal.Decimal("3"), "float": decimal.Decimal("1.5")})

    assert json.loads(body) == {"int": 3, "float": 1.5}


def test_to_json_refuses_unknown_objects() -> None:
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        bootstrap.to_json(object())


def test_error_body_has_lambda_fields() -> None:
    body = json.loads(bootstrap.error_body("ValueError", "bad", "r1", ["frame\n"]))

    assert body == {
        "errorMessage": "bad",
        "errorType": "ValueError",
        "requestId": "r1",
        "stackTrace": ["frame\n"],
    }


def test_user_stack_lists_the_raising_frames() -> None:
    def raise_it() -> None:
        raise ValueError("x")

    try:
        raise_it()
    except ValueError as exc:
        stack = bootstrap.user_stack(exc)

    assert len(stack) == 2
    assert "in raise_it" in stack[-1]


def _next_headers(**extra: str) -> dict[str, str]:
    """Headers as the bootstrap's Runtime API client returns them: names lower-cased."""
    headers = {
        "lambda-runtime-aws-request-id": "r1",
        "lambda-runtime-deadline-ms": str(int(time.time() * 1000) + 3000),
    }
    for name, value in extra.items():
        headers[name.replace("_", "-").lower()] = value
    return headers


def test_invoke_posts_the_json_result(trace: bootstrap.TraceIdVariable) -> None:
    outcome = bootstrap.invoke(
        lambda event, context: {"got": event}, b'{"a": 1}', _next_headers(), trace
    )

    assert outcome == ("response", b'{"got": {"a": 1}}', None)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", {}),
        (b"{}", {"Lambda_Runtime_Client_Context": "[1]"}),
        (b"{}", {"Lambda_Runtime_Cognito_Identity": "{broken"}),
    ],
)
def test_invoke_reports_undecodable_input_as_unmarshal_error(
    body: bytes, headers: dict[str, str], trace: bootstrap.TraceIdVariable
) -> None:
    kind, payload, error_type = bootstrap.invoke(
        lambda event, context: event, body, _next_headers(**headers), trace
    )

    assert (kind, error_type) == ("error", "Runtime.UnmarshalError")
    assert json.loads(payload)["requestId"] == "r1"


def test_invoke_reports_an_unserialisable_result_as_marshal_error(
    trace: bootstrap.TraceIdVariable,
) -> None:
    kind, payload, error_type = bootstrap.invoke(
        lambda event, context: {1, 2}, b"{}", _next_headers(), trace
    )

    assert (kind, error_type) == ("error", "Runtime.MarshalError")
    assert "Unable to marshal response" in json.loads(payload)["errorMessage"]


def test_invoke_reports_a_handler_exception_with_its_class_name(
    trace: bootstrap.TraceIdVariable,
) -> None:
    def handler(event: object, context: object) -> None:
        raise KeyError("missing")

    kind, payload, error_type = bootstrap.invoke(handler, b"{}", _next_headers(), trace)

    assert (kind, error_type) == ("error", "KeyError")
    assert json.loads(payload)["errorMessage"] == "'missing'"


def test_invoke_sets_the_trace_id_where_python_c_and_subprocesses_read_it(
    trace: bootstrap.TraceIdVariable,
) -> None:
    def seen(event: object, context: object) -> list[str | None]:
        from_c = ctypes.CDLL(None).getenv
        from_c.restype = ctypes.c_char_p
        from_c.argtypes = (ctypes.c_char_p,)
        child = subprocess.run(
            ["sh", "-c", 'printf %s "$_X_AMZN_TRACE_ID"'], capture_output=True, check=True
        )
        c_value = from_c(b"_X_AMZN_TRACE_ID")
        return [
            os.environ.get("_X_AMZN_TRACE_ID"),
            c_value.decode() if c_value is not None else None,
            child.stdout.decode(),
        ]

    for trace_id in ("Root=1-a-1;Sampled=0", "Root=1-b-2;Sampled=1"):
        _, payload, _ = bootstrap.invoke(
            seen, b"{}", _next_headers(Lambda_Runtime_Trace_Id=trace_id), trace
        )

        assert json.loads(payload) == [trace_id, trace_id, trace_id]


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _malloc_in_use() -> int:
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    in_use: int = mallinfo2().uordblks
    return in_use


def test_a_trace_id_per_invocation_does_not_grow_the_heap(
    trace: bootstrap.TraceIdVariable,
) -> None:
    # os.environ's setenv left every value in glibc's heap for good: 140 bytes each here.
    trace.set("Root=1-00000000-000000000000000000000000")
    before = _malloc_in_use()

    for n in range(20_000):
        trace.set(f"Root=1-{n:08x}-{n:024x};Parent={n:016x};Sampled=0")

    assert _malloc_in_use() - before < 256 * 1024
    assert os.environ["_X_AMZN_TRACE_ID"].startswith(f"Root=1-{19_999:08x}-")


def test_a_trace_id_no_c_string_can_hold_leaves_the_environment_as_it_was(
    trace: bootstrap.TraceIdVariable,
) -> None:
    trace.set("Root=1-a-1")

    trace.set("Root=1-\0-2")

    assert os.environ["_X_AMZN_TRACE_ID"] == "Root=1-a-1"
