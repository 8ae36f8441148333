"""Catalog to scale specs: settings, reserved caps, provisioned concurrency and its split."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from controller.autoscaler.specs import (
    ScalePolicy,
    provisioned_concurrency,
    provisioned_plans,
    scale_specs,
    split_by_weight,
)
from kubelambda.models import (
    DEFAULT_NAMESPACE,
    IDLE_TIMEOUT_TAG,
    INSTANCE_CONCURRENCY_TAG,
    Alias,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    ProvisionedConcurrency,
    State,
    Target,
    frozen_mapping,
)
from kubelambda.ports.catalog import Catalog
from tests import factories

NS = DEFAULT_NAMESPACE
F = FunctionKey(NS, "f")
V1 = factories.target("f", "1")
V2 = factories.target("f", "2")


def version(name: str, number: str) -> FunctionVersion:
    return factories.function_version(name, number)


def catalog(
    *,
    aliases: Sequence[Alias] = (),
    provisioned: Sequence[ProvisionedConcurrency] = (),
    settings: Sequence[FunctionSettings] = (),
) -> Catalog:
    versions = [version("f", "$LATEST"), version("f", "1"), version("f", "2")]
    return Catalog(
        versions={v.target: v for v in versions},
        aliases={(a.key, a.name): a for a in aliases},
        settings={s.key: s for s in settings},
        provisioned={(p.key, p.qualifier): p for p in provisioned},
    )


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (10, {"1": 1.0}, {"1": 10}),
        (10, {"1": 0.75, "2": 0.25}, {"1": 8, "2": 2}),
        (10, {"1": 0.5, "2": 0.5}, {"1": 5, "2": 5}),
        (3, {"1": 0.9, "2": 0.1}, {"1": 3, "2": 0}),
        (7, {"1": 0.6, "2": 0.4}, {"1": 4, "2": 3}),
        (0, {"1": 0.6, "2": 0.4}, {"1": 0, "2": 0}),
    ],
)
def test_split_by_weight_sums_to_the_total(
    total: int, weights: dict[str, float], expected: dict[str, int]
) -> None:
    assert split_by_weight(total, weights) == expected


def test_config_on_a_version_warms_that_version() -> None:
    plans = provisioned_plans(
        catalog(provisioned=[ProvisionedConcurrency(NS, "f", "1", requested=4)])
    )

    assert provisioned_concurrency(plans) == {V1: 4}


def test_config_on_an_alias_splits_across_its_versions_by_weight() -> None:
    alias = Alias(NS, "f", "live", "1", "rev", additional_version_weights={"2": 0.3})
    plans = provisioned_plans(
        catalog(
            aliases=[alias], provisioned=[ProvisionedConcurrency(NS, "f", "live", requested=10)]
        )
    )

    assert provisioned_concurrency(plans) == {V1: 7, V2: 3}


def test_configs_reaching_one_version_add_up() -> None:
    alias = Alias(NS, "f", "live", "1", "rev")
    plans = provisioned_plans(
        catalog(
            aliases=[alias],
            provisioned=[
                ProvisionedConcurrency(NS, "f", "live", requested=2),
                ProvisionedConcurrency(NS, "f", "1", requested=3),
            ],
        )
    )

    assert provisioned_concurrency(plans) == {V1: 5}


def test_specs_cover_every_version_with_defaults() -> None:
    specs = scale_specs(catalog(), ScalePolicy())

    assert {
        (t.version, s.instance_concurrency, s.idle_timeout, s.min_instances)
        for t, s in specs.items()
    } == {("$LATEST", 1, 300.0, 0), ("1", 1, 300.0, 0), ("2", 1, 300.0, 0)}


@pytest.mark.parametrize("state", [State.PENDING, State.FAILED, State.INACTIVE])
def test_versions_that_cannot_run_get_no_spec(state: State) -> None:
    base = catalog()
    versions = dict(base.versions)
    versions[V2] = versions[V2].with_changes(state=state)
    pending = Catalog(versions, base.aliases, base.settings, base.provisioned)

    assert set(scale_specs(pending, ScalePolicy())) == {factories.target("f", "$LATEST"), V1}


def test_specs_take_tags_reserved_concurrency_and_policy() -> None:
    settings = FunctionSettings(
        NS,
        "f",
        tags=frozen_mapping({IDLE_TIMEOUT_TAG: "2", INSTANCE_CONCURRENCY_TAG: "4"}),
        reserved_concurrency=9,
    )
    spec = scale_specs(catalog(settings=[settings]), ScalePolicy(max_instances=7))[V1]

    assert (spec.idle_timeout, spec.instance_concurrency, spec.max_replicas) == (2.0, 4, 3)


def test_provisioned_minimum_is_in_instances() -> None:
    settings = FunctionSettings(NS, "f", tags=frozen_mapping({INSTANCE_CONCURRENCY_TAG: "2"}))
    cat = catalog(
        settings=[settings], provisioned=[ProvisionedConcurrency(NS, "f", "1", requested=5)]
    )

    assert scale_specs(cat, ScalePolicy())[V1].min_instances == 3


def test_a_plan_names_its_function_by_key() -> None:
    plans = provisioned_plans(catalog(provisioned=[ProvisionedConcurrency(NS, "f", "1", 2)]))

    assert [(p.function, p.qualifier, p.requested) for p in plans] == [(F, "1", 2)]


def test_one_function_name_in_two_namespaces_keeps_its_own_settings_and_configs() -> None:
    other = Target("team-a", "f", "1")
    base = catalog()
    cat = Catalog(
        versions={**base.versions, other: factories.function_version("f", "1", namespace="team-a")},
        settings={
            FunctionKey("team-a", "f"): FunctionSettings(
                "team-a", "f", tags=frozen_mapping({IDLE_TIMEOUT_TAG: "2"})
            )
        },
        provisioned={
            (FunctionKey("team-a", "f"), "1"): ProvisionedConcurrency("team-a", "f", "1", 2)
        },
    )

    specs = scale_specs(cat, ScalePolicy())

    assert (specs[V1].idle_timeout, specs[other].idle_timeout) == (300, 2)
    assert (specs[V1].min_instances, specs[other].min_instances) == (0, 2)
