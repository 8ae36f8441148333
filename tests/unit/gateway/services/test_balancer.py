"""The balancer's choice among endpoints with spare capacity: least in flight (spread) or
most in flight (pack)."""

from __future__ import annotations

import pytest
from gateway_fakes import endpoint

from gateway.services.balancer import Balancer, Choice, least_loaded, most_loaded

A, B, C = endpoint("a", 2), endpoint("b", 2), endpoint("c", 1)


@pytest.mark.parametrize(
    ("in_flight", "exclude", "chosen"),
    [
        ({}, (), "a"),
        ({"a": 1}, (), "b"),
        ({"a": 1, "b": 1}, (), "c"),
        ({"a": 1, "b": 0, "c": 0}, (), "b"),
        ({"a": 2, "b": 1, "c": 1}, (), "b"),
        ({"a": 2, "b": 2, "c": 1}, (), None),
        ({}, ("a",), "b"),
        ({}, ("a", "b", "c"), None),
    ],
)
def test_least_loaded_with_spare_capacity(
    in_flight: dict[str, int], exclude: tuple[str, ...], chosen: str | None
) -> None:
    picked = least_loaded([A, B, C], in_flight, exclude)
    assert (picked.instance_id if picked else None) == chosen


@pytest.mark.parametrize(
    ("in_flight", "exclude", "chosen"),
    [
        ({}, (), "a"),
        ({"a": 1}, (), "a"),
        ({"a": 2}, (), "b"),
        ({"a": 2, "b": 1}, (), "b"),
        ({"a": 1, "b": 1}, (), "a"),
        ({"a": 2, "b": 2}, (), "c"),
        ({"a": 2, "b": 2, "c": 1}, (), None),
        ({"a": 1}, ("a",), "b"),
    ],
)
def test_most_loaded_with_spare_capacity(
    in_flight: dict[str, int], exclude: tuple[str, ...], chosen: str | None
) -> None:
    picked = most_loaded([A, B, C], in_flight, exclude)
    assert (picked.instance_id if picked else None) == chosen


@pytest.mark.parametrize("choose", [least_loaded, most_loaded])
def test_no_endpoints_means_no_choice(choose: Choice) -> None:
    assert choose([], {}, ()) is None


def test_take_spreads_and_counts_per_target() -> None:
    balancer = Balancer()
    taken = [balancer.take([A, B]) for _ in range(4)]
    assert [e.instance_id for e in taken if e] == ["a", "b", "a", "b"]
    assert balancer.take([A, B]) is None
    assert balancer.in_flight(A.target) == 4


def test_a_packing_balancer_fills_one_instance_before_the_next() -> None:
    balancer = Balancer(most_loaded)
    taken = [balancer.take([A, B]) for _ in range(4)]
    assert [e.instance_id for e in taken if e] == ["a", "a", "b", "b"]
    assert balancer.take([A, B]) is None


def test_give_back_frees_the_slot_and_forgets_idle_instances() -> None:
    balancer = Balancer()
    taken = balancer.take([C])
    assert taken is not None
    balancer.give_back(taken)
    assert balancer.instance_in_flight("c") == 0
    assert balancer.in_flight(C.target) == 0
    assert balancer.take([C]) == C
