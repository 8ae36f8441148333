"""Test data shared across suites: one place that knows how to build a valid model."""

from __future__ import annotations

import dataclasses

from kubelambda.models import (
    DEFAULT_NAMESPACE,
    LATEST,
    FunctionKey,
    FunctionVersion,
    State,
    Target,
)
from kubelambda.ports.queue import QueuedEvent


def function_version(name: str = "f", version: str = LATEST, **changes: object) -> FunctionVersion:
    """A runnable python version with placeholder code; ``changes`` override any field."""
    return FunctionVersion(
        namespace=DEFAULT_NAMESPACE,
        function_name=name,
        version=version,
        runtime="python3.11",
        handler="app.handler",
        role="arn:aws:iam::000000000000:role/r",
        # base64 of 32 bytes, as a real CodeSha256 is.
        code_sha256="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        code_size=1,
        revision_id="rev",
        last_modified="t",
        state=State.ACTIVE,
    ).with_changes(**changes)


def target(name: str = "f", version: str = LATEST) -> Target:
    """A target in the default namespace."""
    return Target(DEFAULT_NAMESPACE, name, version)


def queued_event(request_id: str = "req-1", name: str = "f", **changes: object) -> QueuedEvent:
    """A first attempt at an unqualified Event invoke, due at once; ``changes`` override."""
    event = QueuedEvent(
        request_id=request_id,
        function=FunctionKey(DEFAULT_NAMESPACE, name),
        qualifier=None,
        payload=b'{"n": 1}',
        accepted_at=1_700_000_000.0,
    )
    return dataclasses.replace(event, **changes)
