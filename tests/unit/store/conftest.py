"""The ``store`` fixture: a real SQLite store in tmp_path with a fixed clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelambda.store import SqliteStore
from tests.store_testkit import CLOCK, REGION


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore.open(tmp_path, region=REGION, clock=lambda: CLOCK) as opened:
        yield opened
