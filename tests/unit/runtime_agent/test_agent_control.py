"""The control pipe's lines: the number of environments placed, and what is not one."""

from __future__ import annotations

import pytest
from kubelambda_agent.control import ControlProtocol


def _placed(*chunks: bytes, environments: int = 4) -> list[int]:
    placed: list[int] = []
    control = ControlProtocol(placed.append, environments=environments)
    for chunk in chunks:
        control.data_received(chunk)
    return placed


def test_each_whole_line_places_its_environments_in_order() -> None:
    assert _placed(b'{"environments": 2}\n{"environments": 4}\n') == [2, 4]


def test_a_line_split_across_reads_counts_once_it_is_whole() -> None:
    assert _placed(b'{"environ', b'ments": 3}', b"\n") == [3]


@pytest.mark.parametrize(
    "line",
    [
        b"nonsense",
        b"[2]",
        b'{"environments": 0}',
        b'{"environments": 5}',
        b'{"environments": "2"}',
        b'{"environments": true}',
        b'{"environments": 2.0}',
        b'{"other": 2}',
    ],
)
def test_a_line_that_is_no_number_of_environments_the_agent_may_host_is_skipped(
    line: bytes,
) -> None:
    assert _placed(line + b"\n", b'{"environments": 1}\n') == [1]


def test_an_overlong_line_is_dropped_without_holding_its_bytes() -> None:
    assert _placed(b"x" * 5000, b'y\n{"environments": 2}\n') == [2]
