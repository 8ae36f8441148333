"""Kubernetes object names of kubelambda's custom resources, from Lambda names.

A Lambda function name (``[a-zA-Z0-9-_]{1,64}``) is not always a valid object name (a
DNS-1123 label: lowercase, no ``_``, at most 63 characters); alias names are looser
still. The Kubernetes store names the objects it creates with these pure functions; a
hand-written Function may use any object name and give the Lambda name in
``spec.functionName``, so lookups never assume these names, they only try them first.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "FUNCTION_LABEL",
    "alias_object_name",
    "function_object_name",
    "is_dns_label",
    "version_object_name",
]

# On FunctionVersions and Aliases: the object name of the Function they belong to.
FUNCTION_LABEL = "kubelambda.io/function"

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_MAX = 63
_SUBDOMAIN_MAX = 253
_HASH_CHARS = 8


def is_dns_label(name: str) -> bool:
    return len(name) <= _LABEL_MAX and bool(_LABEL.match(name))


def function_object_name(function_name: str) -> str:
    """The name itself when it is a DNS-1123 label, else a lowercase form with ``_`` as
    ``-``, trimmed, plus ``-<8 hex of its SHA-256>`` (so ``My_Fn`` and ``my-fn`` differ).

    >>> function_object_name("My_Fn")
    'my-fn-2a3d4a68'
    """
    if is_dns_label(function_name):
        return function_name
    return _hashed(function_name, function_name, limit=_LABEL_MAX)


def version_object_name(function_object: str, version: str) -> str:
    """``<function object name>-v<N>``: unambiguous, as the suffix parses from the end."""
    return f"{function_object}-v{version}"


def alias_object_name(function_object: str, alias: str, *, hashed: bool = False) -> str:
    """``<function object name>-<alias>`` when the alias name is already lowercase and
    dash-only, else (or when ``hashed``: the plain name is taken by another function's
    alias, as ``a`` + ``b-c`` and ``a-b`` + ``c`` would be) a sanitized form plus a hash
    of the function and alias names."""
    plain = f"{function_object}-{alias}"
    if not hashed and _LABEL.match(alias) and len(plain) <= _SUBDOMAIN_MAX:
        return plain
    return _hashed(plain, f"{function_object}/{alias}", limit=_SUBDOMAIN_MAX)


def _hashed(name: str, identity: str, *, limit: int) -> str:
    digest = hashlib.sha256(identity.encode()).hexdigest()[:_HASH_CHARS]
    stem = re.sub(r"[^a-z0-9-]", "-", name.lower())[: limit - _HASH_CHARS - 1].strip("-")
    return f"{stem}-{digest}" if stem else digest
