"""Splitting runtime output into whole lines."""

from __future__ import annotations

from kubelambda_agent.output import MAX_LINE_BYTES, LineSplitter


def test_complete_lines_pass_straight_through() -> None:
    assert LineSplitter().feed(b"one\ntwo\n") == b"one\ntwo\n"


def test_a_partial_line_waits_for_its_end() -> None:
    splitter = LineSplitter()

    first = splitter.feed(b"one\ntw")
    second = splitter.feed(b"o\n")

    assert (first, second) == (b"one\n", b"two\n")


def test_flush_ends_the_partial_line() -> None:
    splitter = LineSplitter()
    splitter.feed(b"no newline")

    assert splitter.flush() == b"no newline\n"
    assert splitter.flush() == b""


def test_an_overlong_line_is_forwarded_without_waiting() -> None:
    splitter = LineSplitter()

    out = splitter.feed(b"x" * (MAX_LINE_BYTES + 1))

    assert out == b"x" * (MAX_LINE_BYTES + 1) + b"\n"
    assert splitter.flush() == b""
