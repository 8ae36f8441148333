"""Test data shared across suites: one place that knows how to build a valid model."""

from __future__ import annotations

from kubelambda.models import DEFAULT_NAMESPACE, LATEST, FunctionVersion, State, Target


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
