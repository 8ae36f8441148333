"""Fixtures of the invoke path's integration tests (the harness is in ``invoke_harness``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from invoke_harness import Platform, start_platform


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    async with start_platform(tmp_path) as started:
        yield started
