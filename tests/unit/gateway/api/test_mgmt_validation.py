"""The management services' validation rules, one table per rule."""

from __future__ import annotations

import pytest

from gateway.services import validation
from kubelambda import errors
from kubelambda.models import FunctionKey


@pytest.mark.parametrize(
    ("value", "valid"), [(127, False), (128, True), (10240, True), (10241, False)]
)
def test_memory_size_range(value, valid):
    if valid:
        assert validation.check_memory_size(value) == value
    else:
        with pytest.raises(errors.InvalidParameterValue, match="MemorySize"):
            validation.check_memory_size(value)


@pytest.mark.parametrize(("value", "valid"), [(0, False), (1, True), (900, True), (901, False)])
def test_timeout_range(value, valid):
    if valid:
        assert validation.check_timeout(value) == value
    else:
        with pytest.raises(errors.InvalidParameterValue, match="Timeout"):
            validation.check_timeout(value)


@pytest.mark.parametrize(
    ("runtime", "available", "valid"),
    [
        ("python3.11", ("python3.11",), True),
        ("python3.12", ("python3.11",), False),
        ("nodejs20.x", ("python3.11", "provided.al2023"), False),
    ],
)
def test_runtime_must_be_available(runtime, available, valid):
    if valid:
        assert validation.check_runtime(runtime, available) == runtime
    else:
        with pytest.raises(errors.InvalidParameterValue, match=runtime):
            validation.check_runtime(runtime, available)


@pytest.mark.parametrize(
    ("handler", "runtime", "expected"),
    [
        ("app.handler", "python3.11", "app.handler"),
        (None, "provided.al2023", ""),
        ("", "provided", ""),
        (None, "python3.11", errors.InvalidParameterValue),
        ("app handler", "python3.11", errors.InvalidParameterValue),
    ],
)
def test_handler_rules(handler, runtime, expected):
    if isinstance(expected, str):
        assert validation.check_handler(handler, runtime) == expected
    else:
        with pytest.raises(expected):
            validation.check_handler(handler, runtime)


@pytest.mark.parametrize(
    ("runtime", "required"),
    [("python3.11", None), ("provided.al2023", "bootstrap"), ("provided", "bootstrap")],
)
def test_custom_runtimes_require_a_bootstrap(runtime, required):
    assert validation.required_file(runtime) == required


@pytest.mark.parametrize(
    ("variables", "fragment"),
    [
        ({"AWS_REGION": "x"}, "Reserved keys used in this request: AWS_REGION"),
        ({"_HANDLER": "x", "LAMBDA_TASK_ROOT": "y"}, "LAMBDA_TASK_ROOT, _HANDLER"),
        ({"1BAD": "x"}, "does not match"),
        ({"BIG": "x" * 5000}, "4KB"),
    ],
)
def test_environment_rules(variables, fragment):
    with pytest.raises(errors.InvalidParameterValue, match=fragment):
        validation.check_environment(variables)


def test_ordinary_environment_is_accepted():
    assert validation.check_environment({"GREETING": "hi", "DB_URL": "x"}) == {
        "GREETING": "hi",
        "DB_URL": "x",
    }


@pytest.mark.parametrize(
    ("tags", "valid"),
    [
        ({"kubelambda.io/idle-timeout-seconds": "300"}, True),
        ({"kubelambda.io/idle-timeout-seconds": "0.5"}, True),
        ({"kubelambda.io/idle-timeout-seconds": "0"}, False),
        ({"kubelambda.io/idle-timeout-seconds": "inf"}, False),
        ({"kubelambda.io/idle-timeout-seconds": "x"}, False),
        ({"kubelambda.io/instance-concurrency": "1"}, True),
        ({"kubelambda.io/instance-concurrency": "1000"}, True),
        ({"kubelambda.io/instance-concurrency": "0"}, False),
        ({"kubelambda.io/instance-concurrency": "1001"}, False),
        ({"kubelambda.io/instance-concurrency": "-1"}, False),
        ({"aws:cloudformation": "x"}, False),
        ({"": "x"}, False),
        ({f"t{i}": "x" for i in range(51)}, False),
    ],
)
def test_tag_rules(tags, valid):
    if valid:
        assert validation.check_tags(tags) == tags
    else:
        with pytest.raises(errors.InvalidParameterValue):
            validation.check_tags(tags)


def test_tag_count_includes_the_existing_tags():
    existing = {f"t{i}": "x" for i in range(50)}
    with pytest.raises(errors.InvalidParameterValue, match="at most 50"):
        validation.check_tags({"one-more": "x"}, existing=existing)


@pytest.mark.parametrize(
    ("primary", "weights", "valid"),
    [
        ("1", {}, True),
        ("$LATEST", {}, True),
        ("1", {"2": 0.0}, True),
        ("1", {"2": 1.0}, True),
        ("1", {"2": 0.5, "3": 0.5}, False),
        ("1", {"2": -0.1}, False),
        ("1", {"2": 1.01}, False),
        ("1", {"2": float("nan")}, False),
        ("1", {"$LATEST": 0.5}, False),
        ("$LATEST", {"2": 0.5}, False),
        ("1", {"1": 0.5}, False),
        ("1", {"live": 0.5}, False),
    ],
)
def test_routing_rules(primary, weights, valid):
    if valid:
        assert validation.check_routing(primary, weights) == weights
    else:
        with pytest.raises(errors.InvalidParameterValue):
            validation.check_routing(primary, weights)


@pytest.mark.parametrize(("value", "valid"), [(-1, False), (0, True), (1000, True), (1001, False)])
def test_reserved_concurrency_range(value, valid):
    if valid:
        assert validation.check_reserved_concurrency(value) == value
    else:
        with pytest.raises(errors.InvalidParameterValue):
            validation.check_reserved_concurrency(value)


@pytest.mark.parametrize(("value", "valid"), [(-1, False), (0, True), (2, True), (3, False)])
def test_maximum_retry_attempts_range(value, valid):
    if valid:
        assert validation.check_maximum_retry_attempts(value) == value
    else:
        with pytest.raises(errors.InvalidParameterValue, match="MaximumRetryAttempts"):
            validation.check_maximum_retry_attempts(value)


@pytest.mark.parametrize(
    ("value", "valid"), [(59, False), (60, True), (21600, True), (21601, False)]
)
def test_maximum_event_age_range(value, valid):
    if valid:
        assert validation.check_maximum_event_age(value) == value
    else:
        with pytest.raises(errors.InvalidParameterValue, match="MaximumEventAgeInSeconds"):
            validation.check_maximum_event_age(value)


@pytest.mark.parametrize(
    ("destination", "valid"),
    [
        ("arn:aws:lambda:us-east-1:000000000000:function:on-fail", True),
        ("arn:aws:lambda:us-east-1:000000000000:function:on-fail:live", True),
        ("arn:aws:kafka:us-east-1:000000000000:topic/failures", True),
        ("on-fail", False),
        ("000000000000:function:on-fail", False),
        ("arn:aws:lambda:us-east-1:000000000000:function:", False),
        ("arn:aws:sqs:us-east-1:000000000000:queue", False),
        ("arn:aws:kafka:us-east-1:000000000000:topic/", False),
    ],
)
def test_destination_is_a_function_or_a_topic_arn(destination, valid):
    function = FunctionKey("team-a", "f")
    if valid:
        assert validation.check_destination(destination, function=function) == destination
    else:
        with pytest.raises(errors.InvalidParameterValue, match=r"function ARN .* or a topic ARN"):
            validation.check_destination(destination, function=function)


def test_a_function_is_not_its_own_destination():
    with pytest.raises(errors.InvalidParameterValue, match="destination for itself"):
        validation.check_destination(
            "arn:aws:lambda:us-east-1:000000000000:function:f:2",
            function=FunctionKey("team-a", "f"),
        )


@pytest.mark.parametrize(
    ("target", "valid"),
    [
        ("arn:aws:kafka:us-east-1:000000000000:topic/dead", True),
        ("", True),
        ("arn:aws:sqs:us-east-1:000000000000:dead", False),
        ("arn:aws:lambda:us-east-1:000000000000:function:f", False),
    ],
)
def test_dead_letter_target_is_a_topic_arn_or_empty(target, valid):
    if valid:
        assert validation.check_dead_letter_target(target) == target
    else:
        with pytest.raises(errors.InvalidParameterValue, match="topic ARN"):
            validation.check_dead_letter_target(target)
