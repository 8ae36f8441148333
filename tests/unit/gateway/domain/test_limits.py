"""Reserved concurrency: the function-wide cap on admitted invocations."""

from __future__ import annotations

import pytest

from gateway.domain.limits import ReservedConcurrency
from kubelambda import errors
from kubelambda.models import FunctionKey

F = FunctionKey("default", "f")


@pytest.mark.parametrize(
    ("reserved", "admitted"),
    [(None, 50), (0, 0), (1, 1), (3, 3)],
)
def test_admits_up_to_the_reservation(reserved: int | None, admitted: int) -> None:
    limits = ReservedConcurrency()
    count = 0
    for _ in range(50):
        try:
            limits.admit(F, reserved)
        except errors.TooManyRequests as exc:
            assert exc.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
            break
        count += 1
    assert count == admitted


def test_leaving_makes_room_again() -> None:
    limits = ReservedConcurrency()
    limits.admit(F, 1)
    limits.leave(F)
    limits.admit(F, 1)
    assert limits.admitted(F) == 1


@pytest.mark.parametrize(
    "other",
    [FunctionKey("default", "g"), FunctionKey("team-b", "f")],
    ids=["other-name", "same-name-other-namespace"],
)
def test_functions_are_counted_apart(other: FunctionKey) -> None:
    limits = ReservedConcurrency()
    limits.admit(F, 1)
    limits.admit(other, 1)
    assert (limits.admitted(F), limits.admitted(other)) == (1, 1)


def test_throttle_carries_retry_after() -> None:
    limits = ReservedConcurrency(retry_after_seconds=3.0)
    with pytest.raises(errors.TooManyRequests) as caught:
        limits.admit(F, 0)
    assert caught.value.to_wire()[1]["Retry-After"] == "3"
