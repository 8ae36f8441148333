"""What happens to an asynchronous event after an attempt: run it again, later, or give up.

Called by the dispatcher with the attempt's outcome; pure, so the schedule is tested
without a queue or a clock. Lambda's rules (LAMBDA.md, "Async (Event) semantics"):

- A **function error** (an exception, a timeout, an oversized response) ran the
  function: retry up to ``MaximumRetryAttempts`` times, waiting ``function_error_delays``
  before each retry (Lambda: 60 s, then 120 s).
- A **throttle** or a **system error** (no instance could start, the instance died
  before answering) ran nothing: the same attempt is postponed with exponential backoff,
  1 s, 2 s, 4 s, ... capped at 5 minutes, for as long as the event is young enough.
- Either way, an event whose next run would come after ``MaximumEventAgeInSeconds`` is
  dropped now with ``EventAgeExceeded`` rather than kept around to be dropped later.

Worked example, defaults (2 retries, delays 60/120 s, age 21,600 s): accepted at t=0,
attempt 1 fails at t=1 → retry at t=61; attempt 2 fails at t=62 → retry at t=182;
attempt 3 fails → ``RetriesExhausted`` with 3 invocations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Condition",
    "Decision",
    "Failure",
    "RetrySchedule",
    "after_failure",
    "too_old",
]


class Failure(StrEnum):
    FUNCTION_ERROR = "function_error"
    THROTTLED = "throttled"
    SYSTEM_ERROR = "system_error"


class Condition(StrEnum):
    """Why an event's processing ended, as Lambda's destination records name it."""

    SUCCESS = "Success"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    EVENT_AGE_EXCEEDED = "EventAgeExceeded"


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """The platform's delays. ``function_error_delays[i]`` precedes retry ``i + 1``; past
    the end of the list, its last delay repeats."""

    function_error_delays: Sequence[float] = (60.0, 120.0)
    backoff_first: float = 1.0
    backoff_max: float = 300.0

    def function_error_delay(self, attempt: int) -> float:
        """The wait before the attempt after ``attempt`` (1-based) failed."""
        delays = self.function_error_delays
        return delays[min(attempt, len(delays)) - 1] if delays else 0.0

    def backoff(self, postponements: int) -> float:
        """The wait before trying an attempt again that was put off ``postponements``
        times already (0: the first time)."""
        return min(self.backoff_max, self.backoff_first * 2.0**postponements)


@dataclass(frozen=True, slots=True)
class Decision:
    """Run again at ``run_at`` (``retry``: a new attempt; else the same one postponed),
    or give up with ``condition`` when ``run_at`` is ``None``."""

    run_at: float | None
    retry: bool = False
    condition: Condition | None = None


def too_old(accepted_at: float, now: float, maximum_age_seconds: float) -> bool:
    return now - accepted_at > maximum_age_seconds


def after_failure(
    failure: Failure,
    *,
    attempt: int,
    postponements: int,
    accepted_at: float,
    now: float,
    maximum_retry_attempts: int,
    maximum_age_seconds: float,
    schedule: RetrySchedule,
) -> Decision:
    """What to do after ``attempt`` (1-based) ended in ``failure`` at ``now``."""
    if failure is Failure.FUNCTION_ERROR:
        if attempt > maximum_retry_attempts:
            return Decision(run_at=None, condition=Condition.RETRIES_EXHAUSTED)
        run_at = now + schedule.function_error_delay(attempt)
        retry = True
    else:
        run_at = now + schedule.backoff(postponements)
        retry = False
    if too_old(accepted_at, run_at, maximum_age_seconds):
        return Decision(run_at=None, condition=Condition.EVENT_AGE_EXCEEDED)
    return Decision(run_at=run_at, retry=retry)
