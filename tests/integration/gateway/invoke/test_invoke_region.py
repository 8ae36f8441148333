"""The installation's region reaches the function (``KUBELAMBDA_REGION`` in embedded mode):
the gateway is built with it, and a real handler reads it from its context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from invoke_harness import Platform, start_platform

REGION = "eu-west-1"


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    async with start_platform(tmp_path, region=REGION) as started:
        yield started


async def _invoke(platform: Platform, function: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30.0) as client:
        return await client.post(
            platform.invoke_url(function), content=b"{}", headers=platform.auth
        )


@pytest.mark.parametrize(
    ("function", "suffix"),
    [("echo", "echo"), ("echo:live", "echo:live"), ("echo:1", "echo:1")],
)
async def test_invoked_function_arn_names_the_installations_region(
    platform: Platform, function: str, suffix: str
) -> None:
    response = await _invoke(platform, function)
    assert response.status_code == 200
    invoked_arn = response.json()["invoked_arn"]
    assert invoked_arn.startswith(f"arn:aws:lambda:{REGION}:")
    assert invoked_arn == f"arn:aws:lambda:{REGION}:000000000000:function:{suffix}"


async def test_the_function_runs_in_the_installations_region(platform: Platform) -> None:
    assert (await _invoke(platform, "echo")).json()["region"] == REGION


async def test_not_found_names_the_installations_region(platform: Platform) -> None:
    response = await _invoke(platform, "missing")
    assert response.status_code == 404
    assert response.json()["Message"] == (
        f"Function not found: arn:aws:lambda:{REGION}:000000000000:function:missing"
    )
