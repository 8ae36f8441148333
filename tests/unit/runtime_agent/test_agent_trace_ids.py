"""Trace headers the agent makes: X-Ray's format, never repeated."""

from __future__ import annotations

import re
import time

from kubelambda_agent.trace_ids import TraceIds

_HEADER = re.compile(r"Root=1-([0-9a-f]{8})-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0")


def test_headers_follow_x_rays_format_with_the_time_and_all_differ() -> None:
    ids = TraceIds()
    before = int(time.time())
    drawn = [ids() for _ in range(1000)]  # several reads of the entropy
    after = int(time.time())
    assert len(set(drawn)) == len(drawn)
    for header in drawn:
        match = _HEADER.fullmatch(header)
        assert match is not None, header
        assert before <= int(match.group(1), 16) <= after
