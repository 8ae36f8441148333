"""The decider's sample window: what it keeps, forgets, and averages."""

from __future__ import annotations

import pytest

from controller.autoscaler.decide import Sample, ScaleStats


def sample(at: float, in_flight: int = 0, waiting: int = 0) -> Sample:
    return Sample(at=at, in_flight=in_flight, waiting=waiting, ready=0)


def test_with_sample_drops_samples_older_than_the_window() -> None:
    stats = ScaleStats(window=10.0)
    for t in (0.0, 5.0, 10.0, 15.0):
        stats = stats.with_sample(sample(t, in_flight=1))

    assert [s.at for s in stats.samples] == [10.0, 15.0]


def test_with_sample_leaves_the_previous_state_unchanged() -> None:
    before = ScaleStats(window=10.0)
    before.with_sample(sample(1.0, in_flight=3))

    assert before.samples == ()


def test_last_busy_outlives_the_window() -> None:
    stats = ScaleStats(window=10.0).with_sample(sample(0.0, waiting=1))
    for t in range(1, 100):
        stats = stats.with_sample(sample(float(t)))

    assert (len(stats.samples), stats.last_busy_at) == (10, 0.0)


@pytest.mark.parametrize(
    ("demands", "span", "expected"),
    [
        ([], 60.0, 0.0),
        ([0, 0, 0], 60.0, 0.0),
        ([0, 0, 0, 6], 60.0, 6.0),  # silence before a burst is left out
        ([6, 0, 0], 60.0, 2.0),  # silence after demand counts
        ([6, 6, 1, 3], 2.0, 2.0),  # only the last two seconds
        ([2, 2, 2], 60.0, 2.0),
    ],
)
def test_average_demand(demands: list[int], span: float, expected: float) -> None:
    stats = ScaleStats(window=60.0)
    for t, demand in enumerate(demands):
        stats = stats.with_sample(sample(float(t), in_flight=demand))

    assert stats.average_demand(float(len(demands) - 1), span) == pytest.approx(expected)


def test_average_ignores_samples_after_now() -> None:
    stats = ScaleStats().with_sample(sample(1.0, in_flight=2)).with_sample(sample(5.0, in_flight=8))

    assert stats.average_demand(2.0, 60.0) == 2.0
