"""Test data shared across suites: one place that knows how to build a valid model."""

from __future__ import annotations

from kubelambda.models import LATEST, FunctionVersion, State


def function_version(name: str = "f", version: str = LATEST, **changes: object) -> FunctionVersion:
    """A runnable python version with placeholder code; ``changes`` override any field."""
    return FunctionVersion(
        function_name=name,
        version=version,
        runtime="python3.11",
        handler="app.handler",
        role="arn:aws:iam::000000000000:role/r",
        code_sha256="c2hh",
        code_size=1,
        code_path="/code",
        revision_id="rev",
        last_modified="t",
        state=State.ACTIVE,
    ).with_changes(**changes)
