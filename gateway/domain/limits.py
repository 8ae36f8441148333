"""Reserved concurrency: the function-wide cap on invocations admitted at once.

The invoker admits a request after resolving it and before asking the activator for
capacity, and lets it go when the request ends, however it ends. Admitted counts cover
all versions and aliases of a function (Lambda's reserved concurrency is function-wide)
and include requests the activator is still holding: they are about to run, and
admitting them unboundedly would let a capped function queue without limit.
"""

from __future__ import annotations

from kubelambda import errors
from kubelambda.models import FunctionKey

__all__ = ["RESERVED_LIMIT_REASON", "ReservedConcurrency"]

RESERVED_LIMIT_REASON = "ReservedFunctionConcurrentInvocationLimitExceeded"


class ReservedConcurrency:
    def __init__(self, *, retry_after_seconds: float = 1.0) -> None:
        self._admitted: dict[FunctionKey, int] = {}
        self._retry_after = retry_after_seconds

    def admitted(self, function: FunctionKey) -> int:
        return self._admitted.get(function, 0)

    def admit(self, function: FunctionKey, reserved: int | None) -> None:
        """Count one more request in, or raise 429 when ``reserved`` are already in.
        ``None`` means no reservation: no cap."""
        current = self._admitted.get(function, 0)
        if reserved is not None and current >= reserved:
            raise errors.TooManyRequests(
                "Rate Exceeded.", reason=RESERVED_LIMIT_REASON, retry_after=self._retry_after
            )
        self._admitted[function] = current + 1

    def leave(self, function: FunctionKey) -> None:
        remaining = self._admitted.get(function, 0) - 1
        if remaining > 0:
            self._admitted[function] = remaining
        else:
            self._admitted.pop(function, None)
