"""Resolution of a function reference to a version: qualifiers, alias weights, errors,
namespaces and the region of the invoked ARN."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from gateway.domain import routing
from kubelambda import errors
from kubelambda.models import (
    DEFAULT_NAMESPACE,
    Alias,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    State,
)
from kubelambda.names import FunctionRef
from kubelambda.ports.catalog import Catalog
from tests import factories

REGION = "us-east-1"
ARN = f"arn:aws:lambda:{REGION}:000000000000:function"
F = FunctionKey(DEFAULT_NAMESPACE, "f")


def _version(number: str, state: State = State.ACTIVE) -> FunctionVersion:
    return factories.function_version("f", number, state=state)


def _alias(name: str, version: str, weights: dict[str, float] | None = None) -> Alias:
    return Alias(
        DEFAULT_NAMESPACE, "f", name, version, "rev", additional_version_weights=weights or {}
    )


VERSIONS = [
    _version("$LATEST"),
    _version("1"),
    _version("2"),
    _version("3", State.PENDING),
    _version("4", State.INACTIVE),
    _version("5", State.FAILED),
]
CATALOG = Catalog(
    versions={v.target: v for v in VERSIONS},
    aliases={
        (F, "live"): _alias("live", "1", {"2": 0.25}),
        (F, "plain"): _alias("plain", "2"),
        (F, "dangling"): _alias("dangling", "9"),
    },
    settings={F: FunctionSettings(DEFAULT_NAMESPACE, "f", reserved_concurrency=5)},
)


def ref(qualifier: str | None = None, name: str = "f") -> FunctionRef:
    return FunctionRef(DEFAULT_NAMESPACE, name, qualifier)


def resolve(reference: FunctionRef, draw: Callable[[], float] = random.random) -> routing.Resolved:
    return routing.resolve(CATALOG, reference, region=REGION, draw=draw)


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
    resolved = resolve(ref(qualifier))
    assert resolved.target == factories.target("f", version)
    assert resolved.invoked_function_arn == invoked_arn
    assert resolved.reserved_concurrency == 5


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (ref(name="nope"), f"Function not found: {ARN}:nope"),
        (ref("7"), f"Function not found: {ARN}:f:7"),
        (ref("missing"), f"Function not found: {ARN}:f:missing"),
        (ref("dangling"), f"Function not found: {ARN}:f:dangling"),
    ],
)
def test_resolve_missing_is_not_found_with_qualified_arn(
    reference: FunctionRef, message: str
) -> None:
    with pytest.raises(errors.ResourceNotFound) as caught:
        resolve(reference)
    assert caught.value.message == message


@pytest.mark.parametrize(("qualifier", "state"), [("3", "Pending"), ("5", "Failed")])
def test_resolve_version_that_cannot_run_is_conflict_with_aws_wording(
    qualifier: str, state: str
) -> None:
    with pytest.raises(errors.ResourceConflict) as caught:
        resolve(ref(qualifier))
    assert caught.value.message == (
        "The operation cannot be performed at this time. "
        f"The function is currently in the following state: {state}"
    )


def test_resolve_without_settings_has_no_reserved_concurrency() -> None:
    g = factories.function_version("g")
    catalog = Catalog(versions={g.target: g})
    resolved = routing.resolve(catalog, ref(name="g"), region=REGION)
    assert resolved.reserved_concurrency is None


@pytest.mark.parametrize("qualifier", [None, "1", "live"])
def test_a_function_of_another_namespace_is_not_found(qualifier: str | None) -> None:
    with pytest.raises(errors.ResourceNotFound):
        resolve(FunctionRef("team-b", "f", qualifier))


def test_same_name_in_two_namespaces_resolves_to_each_ones_own_version() -> None:
    mine = factories.function_version("f", namespace="team-a", timeout=10)
    theirs = factories.function_version("f", namespace="team-b", timeout=20)
    catalog = Catalog(
        versions={mine.target: mine, theirs.target: theirs},
        settings={
            mine.key: FunctionSettings("team-a", "f", reserved_concurrency=1),
            theirs.key: FunctionSettings("team-b", "f"),
        },
    )
    resolved_a = routing.resolve(catalog, FunctionRef("team-a", "f"), region=REGION)
    resolved_b = routing.resolve(catalog, FunctionRef("team-b", "f"), region=REGION)
    assert (resolved_a.version.timeout, resolved_a.reserved_concurrency) == (10, 1)
    assert (resolved_b.version.timeout, resolved_b.reserved_concurrency) == (20, None)


@pytest.mark.parametrize("region", ["eu-west-1", "ap-southeast-2"])
def test_invoked_arn_and_not_found_name_the_installations_region(region: str) -> None:
    resolved = routing.resolve(CATALOG, ref("live"), region=region, draw=lambda: 0.9)
    assert resolved.invoked_function_arn == f"arn:aws:lambda:{region}:000000000000:function:f:live"
    with pytest.raises(errors.ResourceNotFound) as caught:
        routing.resolve(CATALOG, ref(name="nope"), region=region)
    assert f"arn:aws:lambda:{region}:" in caught.value.message


@pytest.mark.parametrize(
    ("draw", "version"),
    [(0.0, "2"), (0.2499, "2"), (0.25, "1"), (0.9999, "1")],
)
def test_alias_draw_below_extra_weight_goes_to_extra_version(draw: float, version: str) -> None:
    assert routing.choose_alias_version(CATALOG.aliases[(F, "live")], draw) == version


def test_alias_without_weights_always_goes_to_its_version() -> None:
    assert routing.choose_alias_version(CATALOG.aliases[(F, "plain")], 0.0) == "2"


def test_resolve_alias_uses_the_injected_draw() -> None:
    resolved = resolve(ref("live"), draw=lambda: 0.1)
    assert resolved.target == factories.target("f", "2")
    assert resolved.invoked_function_arn == f"{ARN}:f:live"


def test_alias_weights_hold_over_many_draws() -> None:
    rng = random.Random(1234)
    draws = 20_000
    extra = sum(resolve(ref("live"), draw=rng.random).version.version == "2" for _ in range(draws))
    # 25% expected; 4 standard deviations of a binomial(20000, 0.25) is about 1.2%.
    assert abs(extra / draws - 0.25) < 0.012
