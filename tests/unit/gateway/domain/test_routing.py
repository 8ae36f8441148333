"""Resolution of a function reference to a version: qualifiers, alias weights, errors."""

from __future__ import annotations

import random

import pytest

from gateway.domain import routing
from kubelambda import errors
from kubelambda.models import Alias, FunctionSettings, FunctionVersion, State, Target
from kubelambda.names import FunctionRef
from kubelambda.ports import Catalog
from tests import factories

ARN = "arn:aws:lambda:us-east-1:000000000000:function"


def _version(number: str, state: State = State.ACTIVE) -> FunctionVersion:
    return factories.function_version("f", number, state=state)


CATALOG = Catalog(
    versions={
        Target("f", "$LATEST"): _version("$LATEST"),
        Target("f", "1"): _version("1"),
        Target("f", "2"): _version("2"),
        Target("f", "3"): _version("3", State.PENDING),
        Target("f", "4"): _version("4", State.INACTIVE),
    },
    aliases={
        ("f", "live"): Alias("f", "live", "1", "rev", additional_version_weights={"2": 0.25}),
        ("f", "plain"): Alias("f", "plain", "2", "rev"),
        ("f", "dangling"): Alias("f", "dangling", "9", "rev"),
    },
    settings={"f": FunctionSettings("f", reserved_concurrency=5)},
)


@pytest.mark.parametrize(
    ("qualifier", "version", "invoked_arn"),
    [
        (None, "$LATEST", f"{ARN}:f"),
        ("$LATEST", "$LATEST", f"{ARN}:f:$LATEST"),
        ("1", "1", f"{ARN}:f:1"),
        ("plain", "2", f"{ARN}:f:plain"),
        ("4", "4", f"{ARN}:f:4"),
    ],
)
def test_resolve_finds_version_and_invoked_arn(
    qualifier: str | None, version: str, invoked_arn: str
) -> None:
    resolved = routing.resolve(CATALOG, FunctionRef("f", qualifier))
    assert resolved.target == Target("f", version)
    assert resolved.invoked_function_arn == invoked_arn
    assert resolved.reserved_concurrency == 5


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (FunctionRef("nope"), f"Function not found: {ARN}:nope"),
        (FunctionRef("f", "7"), f"Function not found: {ARN}:f:7"),
        (FunctionRef("f", "missing"), f"Function not found: {ARN}:f:missing"),
        (FunctionRef("f", "dangling"), f"Function not found: {ARN}:f:dangling"),
    ],
)
def test_resolve_missing_is_not_found_with_qualified_arn(ref: FunctionRef, message: str) -> None:
    with pytest.raises(errors.ResourceNotFound) as caught:
        routing.resolve(CATALOG, ref)
    assert caught.value.message == message


def test_resolve_pending_version_is_conflict_with_aws_wording() -> None:
    with pytest.raises(errors.ResourceConflict) as caught:
        routing.resolve(CATALOG, FunctionRef("f", "3"))
    assert caught.value.message == (
        "The operation cannot be performed at this time. "
        "The function is currently in the following state: Pending"
    )


def test_resolve_without_settings_has_no_reserved_concurrency() -> None:
    catalog = Catalog(
        versions={Target("g", "$LATEST"): _version("$LATEST").with_changes(function_name="g")}
    )
    assert routing.resolve(catalog, FunctionRef("g")).reserved_concurrency is None


@pytest.mark.parametrize(
    ("draw", "version"),
    [(0.0, "2"), (0.2499, "2"), (0.25, "1"), (0.9999, "1")],
)
def test_alias_draw_below_extra_weight_goes_to_extra_version(draw: float, version: str) -> None:
    assert routing.choose_alias_version(CATALOG.aliases[("f", "live")], draw) == version


def test_alias_without_weights_always_goes_to_its_version() -> None:
    assert routing.choose_alias_version(CATALOG.aliases[("f", "plain")], 0.0) == "2"


def test_resolve_alias_uses_the_injected_draw() -> None:
    resolved = routing.resolve(CATALOG, FunctionRef("f", "live"), draw=lambda: 0.1)
    assert resolved.target == Target("f", "2")
    assert resolved.invoked_function_arn == f"{ARN}:f:live"


def test_alias_weights_hold_over_many_draws() -> None:
    rng = random.Random(1234)
    draws = 20_000
    extra = sum(
        routing.resolve(CATALOG, FunctionRef("f", "live"), draw=rng.random).version.version == "2"
        for _ in range(draws)
    )
    # 25% expected; 4 standard deviations of a binomial(20000, 0.25) is about 1.2%.
    assert abs(extra / draws - 0.25) < 0.012
