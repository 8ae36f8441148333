"""What the autoscaler loop needs from an instance backend, beyond the shared port.

``kubelambda.ports.InstanceBackend`` is what the gateway sees (ready endpoints). The
autoscaler also says how many of the instances are provisioned concurrency (they start
with ``AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency``) and asks whether a
target keeps failing to start, to report a provisioned config as FAILED. Implemented by
``controller.backends.local.LocalProcessBackend`` (and the Kubernetes backend to come).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kubelambda.models import FunctionVersion, Target
from kubelambda.ports import InstanceBackend

__all__ = ["ScalingBackend", "StartFailure"]


@dataclass(frozen=True, slots=True)
class StartFailure:
    """The latest failures to start instances of a target, since it last had one ready."""

    consecutive: int
    reason: str
    retriable: bool


class ScalingBackend(InstanceBackend, Protocol):
    async def scale(
        self, version: FunctionVersion, *, replicas: int, concurrency: int, provisioned: int = 0
    ) -> None:
        """Run ``replicas`` instances, the first ``provisioned`` of them as provisioned."""
        ...

    def start_failure(self, target: Target) -> StartFailure | None: ...
