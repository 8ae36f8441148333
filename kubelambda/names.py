"""Names: function ARNs, qualified names, and the checks Lambda applies to them.

Used by the management API and the invoke path to turn any of Lambda's accepted
forms of ``FunctionName`` (name, ``name:qualifier``, partial ARN, full ARN) into a
``(name, qualifier)`` pair, and to render ARNs back for responses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubelambda import errors
from kubelambda.models import DEFAULT_NAMESPACE, FunctionKey

__all__ = [
    "FunctionRef",
    "dead_letter_topic",
    "default_dead_letter_topic",
    "function_arn",
    "is_version_number",
    "parse_function_ref",
    "parse_topic_arn",
    "topic_arn",
    "validate_alias_name",
    "validate_function_name",
]

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "000000000000"

_DEAD_LETTER_PREFIX = "kubelambda-dlq."
_TOPIC_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-zA-Z-]*):kafka:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"topic/(?P<topic>[a-zA-Z0-9._-]{1,249})$"
)
_NAME = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
_QUALIFIER = re.compile(r"^(\$LATEST|[a-zA-Z0-9-_]{1,128})$")
_ALIAS = re.compile(r"^(?!^[0-9]+$)[a-zA-Z0-9-_]{1,128}$")
_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"function:(?P<name>[^:]+)(?::(?P<qualifier>[^:]+))?$"
)
_PARTIAL_ARN = re.compile(
    r"^(?P<account>\d{12}):function:(?P<name>[^:]+)(?::(?P<qualifier>[^:]+))?$"
)


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """A function (namespace and name) and the qualifier it was addressed with (``None``
    when unqualified). The namespace is the caller's, never read from the request."""

    namespace: str
    name: str
    qualifier: str | None = None

    @property
    def key(self) -> FunctionKey:
        return FunctionKey(self.namespace, self.name)


def function_arn(
    name: str,
    qualifier: str | None = None,
    *,
    region: str,
    account: str = DEFAULT_ACCOUNT,
) -> str:
    """``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]``. The region is
    the installation's (settings), passed down from the launcher: never a default."""
    base = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def topic_arn(topic: str, *, region: str, account: str = DEFAULT_ACCOUNT) -> str:
    """The ARN a dead-letter or destination topic is named by in Lambda's API."""
    return f"arn:aws:kafka:{region}:{account}:topic/{topic}"


def parse_topic_arn(arn: str) -> str | None:
    """The topic a topic ARN names, or ``None`` when ``arn`` is not one."""
    match = _TOPIC_ARN.match(arn)
    return match.group("topic") if match else None


def dead_letter_topic(function: FunctionKey, target_arn: str | None) -> str | None:
    """Where ``function``'s dead letters go, given its ``DeadLetterConfig.TargetArn``:
    the default topic when unset (``None``), nowhere when empty, else the ARN's topic."""
    if target_arn is None:
        return default_dead_letter_topic(function)
    if not target_arn:
        return None
    return parse_topic_arn(target_arn) or default_dead_letter_topic(function)


def default_dead_letter_topic(function: FunctionKey) -> str:
    """``kubelambda-dlq.<function>`` in the default namespace and
    ``kubelambda-dlq.<namespace>.<function>`` in any other (names hold no dots)."""
    if function.namespace == DEFAULT_NAMESPACE:
        return f"{_DEAD_LETTER_PREFIX}{function.name}"
    return f"{_DEAD_LETTER_PREFIX}{function.namespace}.{function.name}"


def is_version_number(qualifier: str) -> bool:
    return qualifier.isdigit()


def validate_function_name(name: str) -> str:
    if not _NAME.match(name):
        raise errors.InvalidParameterValue(
            f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+"
        )
    return name


def validate_alias_name(name: str) -> str:
    if not _ALIAS.match(name):
        raise errors.InvalidParameterValue(
            f"Alias name '{name}' is invalid: it must be 1-128 characters of letters, digits, "
            "'-' or '_', and not all digits"
        )
    return name


def parse_function_ref(
    function_name: str, qualifier: str | None = None, *, namespace: str
) -> FunctionRef:
    """Split any accepted ``FunctionName`` form, checking it agrees with a ``Qualifier`` param.

    >>> parse_function_ref("arn:aws:lambda:us-east-1:000000000000:function:f:live", namespace="a")
    FunctionRef(namespace='a', name='f', qualifier='live')
    """
    match = _ARN.match(function_name) or _PARTIAL_ARN.match(function_name)
    if match:
        name, embedded = match.group("name"), match.group("qualifier")
    elif function_name.count(":") == 1:
        name, embedded = function_name.split(":")
    elif ":" in function_name:
        raise errors.InvalidParameterValue(f"Invalid function name or ARN: {function_name}")
    else:
        name, embedded = function_name, None
    validate_function_name(name)
    if embedded and qualifier and embedded != qualifier:
        raise errors.InvalidParameterValue(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    chosen = embedded or qualifier
    if chosen is not None and not _QUALIFIER.match(chosen):
        raise errors.InvalidParameterValue(f"Invalid qualifier: {chosen}")
    return FunctionRef(namespace=namespace, name=name, qualifier=chosen)
