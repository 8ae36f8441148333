"""Lambda's START/END/REPORT lines, billed duration, the timeout notice and the Tail."""

from __future__ import annotations

import base64

import pytest
from kubelambda_agent import log_lines


def test_start_line() -> None:
    assert log_lines.start_line("r1", "$LATEST") == b"START RequestId: r1 Version: $LATEST\n"


def test_end_line() -> None:
    assert log_lines.end_line("r1") == b"END RequestId: r1\n"


def test_report_line_without_init_duration() -> None:
    line = log_lines.report_line(
        "r1", duration_ms=12.345, memory_size_mb=128, max_memory_used_mb=20, init_duration_ms=None
    )

    assert line == (
        b"REPORT RequestId: r1\tDuration: 12.35 ms\tBilled Duration: 13 ms"
        b"\tMemory Size: 128 MB\tMax Memory Used: 20 MB\n"
    )


def test_report_line_puts_init_duration_last() -> None:
    line = log_lines.report_line(
        "r1", duration_ms=1.0, memory_size_mb=256, max_memory_used_mb=30, init_duration_ms=98.765
    )

    assert line.endswith(b"\tMax Memory Used: 30 MB\tInit Duration: 98.77 ms\n")


@pytest.mark.parametrize(
    ("duration_ms", "billed"), [(0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (999.5, 1000)]
)
def test_billed_duration_rounds_up_to_whole_milliseconds(duration_ms: float, billed: int) -> None:
    assert log_lines.billed_duration_ms(duration_ms) == billed


def test_timed_out_line_has_utc_timestamp_and_two_decimals() -> None:
    line = log_lines.timed_out_line("r1", 3, now=1_700_000_000.123)

    assert line == b"2023-11-14T22:13:20.123Z r1 Task timed out after 3.00 seconds\n"


def test_tail_keeps_the_last_4096_bytes() -> None:
    log = b"a" * 100 + b"b" * 4096

    assert base64.b64decode(log_lines.tail(log)) == b"b" * 4096


def test_tail_of_a_short_log_is_all_of_it() -> None:
    assert base64.b64decode(log_lines.tail(bytearray(b"START\nEND\n"))) == b"START\nEND\n"
