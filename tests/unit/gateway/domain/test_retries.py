"""The async retry schedule: function errors retried with Lambda's delays, throttles and
system errors backed off exponentially, and nothing kept past the maximum event age."""

import pytest

from gateway.domain import retries
from gateway.domain.retries import Condition, Failure, RetrySchedule

SCHEDULE = RetrySchedule()


def decide(
    failure: Failure,
    *,
    attempt: int = 1,
    postponements: int = 0,
    now: float = 100.0,
    retries_allowed: int = 2,
    age: float = 21_600,
) -> retries.Decision:
    return retries.after_failure(
        failure,
        attempt=attempt,
        postponements=postponements,
        accepted_at=0.0,
        now=now,
        maximum_retry_attempts=retries_allowed,
        maximum_age_seconds=age,
        schedule=SCHEDULE,
    )


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(1, 60.0), (2, 120.0)],
)
def test_function_errors_retry_after_lambdas_delays(attempt: int, delay: float) -> None:
    decision = decide(Failure.FUNCTION_ERROR, attempt=attempt)

    assert decision == retries.Decision(run_at=100.0 + delay, retry=True)


def test_the_last_allowed_attempt_failing_exhausts_retries() -> None:
    decision = decide(Failure.FUNCTION_ERROR, attempt=3)

    assert decision == retries.Decision(run_at=None, condition=Condition.RETRIES_EXHAUSTED)


def test_zero_retries_gives_up_after_the_first_attempt() -> None:
    decision = decide(Failure.FUNCTION_ERROR, attempt=1, retries_allowed=0)

    assert decision.condition is Condition.RETRIES_EXHAUSTED


@pytest.mark.parametrize("failure", [Failure.THROTTLED, Failure.SYSTEM_ERROR])
@pytest.mark.parametrize(
    ("postponements", "delay"),
    [(0, 1.0), (1, 2.0), (2, 4.0), (8, 256.0), (9, 300.0), (30, 300.0)],
)
def test_throttles_and_system_errors_back_off_exponentially_up_to_five_minutes(
    failure: Failure, postponements: int, delay: float
) -> None:
    decision = decide(failure, postponements=postponements)

    assert decision == retries.Decision(run_at=100.0 + delay, retry=False)


def test_throttles_do_not_use_up_retry_attempts() -> None:
    decision = decide(Failure.THROTTLED, attempt=3)

    assert decision.run_at is not None and not decision.retry


@pytest.mark.parametrize("failure", list(Failure))
def test_a_next_run_past_the_maximum_age_ends_the_event_now(failure: Failure) -> None:
    decision = decide(failure, now=59.5, age=60)

    assert decision == retries.Decision(run_at=None, condition=Condition.EVENT_AGE_EXCEEDED)


def test_configured_delays_repeat_their_last_value() -> None:
    schedule = RetrySchedule(function_error_delays=(1.0, 2.0))

    assert [schedule.function_error_delay(a) for a in (1, 2, 3)] == [1.0, 2.0, 2.0]


def test_too_old_is_strictly_past_the_age() -> None:
    assert not retries.too_old(0.0, 60.0, 60)
    assert retries.too_old(0.0, 60.001, 60)
