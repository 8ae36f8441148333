"""What the controller writes back to the store: the outcome of work it did.

The controller settles new code packages (Pending -> Active, InProgress -> Successful,
or Failed with a reason) and reports provisioned-concurrency configs READY or FAILED.
It reads through the same ``CatalogSource`` as everyone else; it never edits a spec.
"""

from __future__ import annotations

from typing import Protocol

from kubelambda.models import FunctionKey, ProvisionedStatus
from kubelambda.ports.catalog import CatalogSource

__all__ = ["ControllerStore"]


class ControllerStore(CatalogSource, Protocol):
    async def finish_package(
        self, function: FunctionKey, code_sha256: str, *, error: str | None
    ) -> bool:
        """Mark the versions of ``function`` waiting for this package Active/Successful,
        or Failed with ``error``. Returns whether any version changed (a package may
        have been replaced by a newer upload meanwhile)."""
        ...

    async def set_provisioned_status(
        self,
        function: FunctionKey,
        qualifier: str,
        *,
        allocated: int,
        status: ProvisionedStatus,
        reason: str = "",
    ) -> None:
        """The controller's report on a provisioned-concurrency config it reconciled."""
        ...
