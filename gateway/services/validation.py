"""Lambda's rules for management requests, as pure functions that raise Lambda's errors.

Called by the management services (``functions``, ``aliases``, ``concurrency``,
``event_invoke_configs``) before
anything is stored. Each check returns the value it accepted, so a service reads as a
list of checks; messages follow AWS's wording where AWS has one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping

from kubelambda import errors, names, runtimes
from kubelambda.models import IDLE_TIMEOUT_TAG, INSTANCE_CONCURRENCY_TAG, LATEST, FunctionKey

__all__ = [
    "MAX_RESERVED_CONCURRENCY",
    "check_dead_letter_target",
    "check_description",
    "check_destination",
    "check_environment",
    "check_handler",
    "check_maximum_event_age",
    "check_maximum_retry_attempts",
    "check_memory_size",
    "check_reserved_concurrency",
    "check_role",
    "check_routing",
    "check_runtime",
    "check_tags",
    "check_timeout",
    "required_file",
]

MEMORY_RANGE = (128, 10240)
TIMEOUT_RANGE = (1, 900)
MAX_RESERVED_CONCURRENCY = 1000
INSTANCE_CONCURRENCY_RANGE = (1, 1000)
MAXIMUM_RETRY_ATTEMPTS_RANGE = (0, 2)
MAXIMUM_EVENT_AGE_RANGE = (60, 21_600)
MAX_TAGS = 50
MAX_ENVIRONMENT_BYTES = 4096
MAX_DESCRIPTION = 256

_PATTERN = "Member must satisfy regular expression pattern: "
_ROLE = re.compile(r"^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
_HANDLER = re.compile(r"^[^\s]{1,128}$")
_ENV_NAME = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_])+$")
_FUNCTION_ARN_FORM = "arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]"
_TOPIC_ARN_FORM = "arn:aws:kafka:<region>:<account>:topic/<name>"
# Set by the platform for every instance; a function may not override them (as Lambda).
RESERVED_ENVIRONMENT = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_REGION",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_RUNTIME_DIR",
        "LAMBDA_TASK_ROOT",
    }
)


def check_memory_size(value: int) -> int:
    return _in_range("MemorySize", value, *MEMORY_RANGE)


def check_timeout(value: int) -> int:
    return _in_range("Timeout", value, *TIMEOUT_RANGE)


def check_reserved_concurrency(value: int) -> int:
    return _in_range("ReservedConcurrentExecutions", value, 0, MAX_RESERVED_CONCURRENCY)


def check_maximum_retry_attempts(value: int) -> int:
    return _in_range("MaximumRetryAttempts", value, *MAXIMUM_RETRY_ATTEMPTS_RANGE)


def check_maximum_event_age(value: int) -> int:
    return _in_range("MaximumEventAgeInSeconds", value, *MAXIMUM_EVENT_AGE_RANGE)


def check_destination(destination: str, *, function: FunctionKey) -> str:
    """An OnSuccess/OnFailure destination of ``function``: another function's ARN (in the
    caller's namespace, as every ARN is) or a topic ARN."""
    if names.parse_topic_arn(destination) is not None:
        return destination
    # With "arn:" and ":lambda:" in it, parse_function_ref accepts only a full function
    # ARN: none of its shorter forms has that many colons.
    if destination.startswith("arn:") and ":lambda:" in destination:
        try:
            ref = names.parse_function_ref(destination, namespace=function.namespace)
        except errors.InvalidParameterValue:
            ref = None
        if ref is not None:
            if ref.key == function:
                # Lambda refuses it: every outcome would invoke the function again.
                raise errors.InvalidParameterValue(
                    "You can't specify the function as a destination for itself."
                )
            return destination
    raise errors.InvalidParameterValue(
        f"The destination ARN {destination} is invalid. A destination is a function ARN "
        f"({_FUNCTION_ARN_FORM}) or a topic ARN ({_TOPIC_ARN_FORM})."
    )


def check_dead_letter_target(target: str) -> str:
    """``DeadLetterConfig.TargetArn``: a topic ARN, or ``""`` to turn dead letters off."""
    if target == "" or names.parse_topic_arn(target) is not None:
        return target
    raise errors.InvalidParameterValue(
        f"The dead-letter target ARN {target} is invalid. A dead-letter target is a topic "
        f"ARN ({_TOPIC_ARN_FORM}), or empty to turn dead letters off."
    )


def check_runtime(runtime: str, available: Collection[str]) -> str:
    if runtime not in available:
        raise errors.InvalidParameterValue(
            f"The runtime parameter of {runtime} is not supported by this installation. "
            f"Supported runtimes: {', '.join(available)}"
        )
    return runtime


def required_file(runtime: str) -> str | None:
    """The file a package of this runtime must hold at its top level (if any)."""
    return "bootstrap" if runtimes.is_provided(runtime) else None


def check_handler(handler: str | None, runtime: str) -> str:
    if handler is None or handler == "":
        if runtimes.is_provided(runtime):
            # Custom runtimes read _HANDLER themselves and may ignore it (as on Lambda).
            return ""
        raise errors.InvalidParameterValue("The Handler parameter is required for this runtime.")
    if not _HANDLER.match(handler):
        raise _constraint(handler, "handler", _PATTERN + "[^\\s]+")
    return handler


def check_role(role: str) -> str:
    if not _ROLE.match(role):
        raise errors.InvalidParameterValue(
            f"The role defined for the function cannot be assumed by Lambda: {role!r} is not "
            "an IAM role ARN"
        )
    return role


def check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise _constraint(
            description[:20] + "...",
            "description",
            f"Member must have length less than or equal to {MAX_DESCRIPTION}",
        )
    return description


def check_environment(variables: Mapping[str, str]) -> Mapping[str, str]:
    reserved = sorted(name for name in variables if name in RESERVED_ENVIRONMENT)
    if reserved:
        raise errors.InvalidParameterValue(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not "
            f"supported for modification. Reserved keys used in this request: {', '.join(reserved)}"
        )
    for name in variables:
        if not _ENV_NAME.match(name):
            raise errors.InvalidParameterValue(
                f"Lambda was unable to configure your environment variables because the "
                f"environment variable name {name!r} does not match [a-zA-Z]([a-zA-Z0-9_])+"
            )
    if len(json.dumps(dict(variables), separators=(",", ":")).encode()) > MAX_ENVIRONMENT_BYTES:
        raise errors.InvalidParameterValue(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided exceeded the 4KB limit."
        )
    return variables


def check_tags(
    tags: Mapping[str, str], *, existing: Mapping[str, str] | None = None
) -> Mapping[str, str]:
    """Lambda's tag limits, and our ``kubelambda.io/*`` knobs' value ranges."""
    if len({**(existing or {}), **tags}) > MAX_TAGS:
        raise errors.InvalidParameterValue(f"A function can have at most {MAX_TAGS} tags")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise errors.InvalidParameterValue(
                f"Tag key {key[:128]!r} must be 1-128 characters and its value at most 256"
            )
        if key.lower().startswith("aws:"):
            raise errors.InvalidParameterValue("Tag keys starting with 'aws:' are reserved")
    if IDLE_TIMEOUT_TAG in tags:
        _positive_number(IDLE_TIMEOUT_TAG, tags[IDLE_TIMEOUT_TAG])
    if INSTANCE_CONCURRENCY_TAG in tags:
        _integer_in(
            INSTANCE_CONCURRENCY_TAG, tags[INSTANCE_CONCURRENCY_TAG], *INSTANCE_CONCURRENCY_RANGE
        )
    return tags


def check_routing(primary: str, weights: Mapping[str, float]) -> Mapping[str, float]:
    """An alias's RoutingConfig: at most one more published version, weighted 0-1."""
    if not weights:
        return weights
    if len(weights) > 1:
        raise errors.InvalidParameterValue(
            "Number of items in AdditionalVersionWeights must be at most 1"
        )
    ((version, weight),) = weights.items()
    if primary == LATEST or version == LATEST:
        raise errors.InvalidParameterValue(
            "$LATEST is not supported for an alias pointing to more than 1 version"
        )
    if not version.isdigit():
        raise _constraint(version, "additionalVersion", _PATTERN + "[0-9]+")
    if version == primary:
        raise errors.InvalidParameterValue(
            f"Invalid function version {version}. Function version {version} is already "
            "included in routing configuration."
        )
    if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
        raise errors.InvalidParameterValue(
            f"Invalid weight {weight} for version {version}: weights must be between 0.0 and 1.0"
        )
    return weights


def _in_range(member: str, value: int, low: int, high: int) -> int:
    if value < low:
        raise errors.InvalidParameterValue(
            f"'{member}' value failed to satisfy constraint: "
            f"Member must have value greater than or equal to {low}"
        )
    if value > high:
        raise errors.InvalidParameterValue(
            f"'{member}' value failed to satisfy constraint: "
            f"Member must have value less than or equal to {high}"
        )
    return value


def _constraint(value: str, member: str, rule: str) -> errors.InvalidParameterValue:
    return errors.InvalidParameterValue(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {rule}"
    )


def _positive_number(tag: str, value: str) -> None:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise errors.InvalidParameterValue(
            f"Tag {tag} must be a positive number of seconds, not {value!r}"
        )


def _integer_in(tag: str, value: str, low: int, high: int) -> None:
    if not (value.isdigit() and low <= int(value) <= high):
        raise errors.InvalidParameterValue(
            f"Tag {tag} must be an integer from {low} to {high}, not {value!r}"
        )
