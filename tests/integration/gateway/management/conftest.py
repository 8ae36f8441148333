"""The ``gateway`` fixture: a real gateway (``mgmt_gateway``) over a fresh tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mgmt_gateway import RunningGateway, running_gateway


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path) as running:
        yield running
