"""Fixtures shared by the gateway's unit tests: in-memory ports and a fresh registry.

(Its directory is also what makes ``gateway_fakes`` importable from the test subfolders.)
"""

from __future__ import annotations

import pytest
from gateway_fakes import RecordingSignals, StaticEndpoints
from prometheus_client import CollectorRegistry


@pytest.fixture
def endpoints() -> StaticEndpoints:
    return StaticEndpoints()


@pytest.fixture
def signals() -> RecordingSignals:
    return RecordingSignals()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()
