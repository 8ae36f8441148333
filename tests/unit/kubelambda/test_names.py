"""Function name forms Lambda accepts, and the qualifier rules between them."""

import pytest

from kubelambda import errors, names
from kubelambda.models import FunctionKey


@pytest.mark.parametrize(
    ("function_name", "qualifier", "expected"),
    [
        ("hello", None, names.FunctionRef("team-a", "hello", None)),
        ("hello", "$LATEST", names.FunctionRef("team-a", "hello", "$LATEST")),
        ("hello:live", None, names.FunctionRef("team-a", "hello", "live")),
        ("hello:7", "7", names.FunctionRef("team-a", "hello", "7")),
        ("123456789012:function:hello", None, names.FunctionRef("team-a", "hello", None)),
        ("123456789012:function:hello:live", None, names.FunctionRef("team-a", "hello", "live")),
        (
            "arn:aws:lambda:eu-west-1:123456789012:function:hello",
            "3",
            names.FunctionRef("team-a", "hello", "3"),
        ),
        (
            "arn:aws:lambda:us-east-1:000000000000:function:hello:$LATEST",
            None,
            names.FunctionRef("team-a", "hello", "$LATEST"),
        ),
    ],
)
def test_parse_function_ref_accepts_lambda_forms(
    function_name: str, qualifier: str | None, expected: names.FunctionRef
) -> None:
    assert names.parse_function_ref(function_name, qualifier, namespace="team-a") == expected


@pytest.mark.parametrize(
    ("function_name", "qualifier"),
    [
        ("hello:live", "other"),
        ("bad name", None),
        ("a:b:c", None),
        ("x" * 65, None),
        ("hello", "bad qualifier"),
    ],
)
def test_parse_function_ref_rejects_bad_forms(function_name: str, qualifier: str | None) -> None:
    with pytest.raises(errors.InvalidParameterValue):
        names.parse_function_ref(function_name, qualifier, namespace="default")


def test_function_arn_is_qualified_only_when_asked() -> None:
    assert names.function_arn("f", region="us-east-1") == (
        "arn:aws:lambda:us-east-1:000000000000:function:f"
    )
    assert names.function_arn("f", "live", region="eu-west-1", account="123456789012") == (
        "arn:aws:lambda:eu-west-1:123456789012:function:f:live"
    )


@pytest.mark.parametrize("alias", ["live", "blue-1", "v_2", "1a"])
def test_alias_names_may_mix_digits(alias: str) -> None:
    assert names.validate_alias_name(alias) == alias


@pytest.mark.parametrize("alias", ["123", "", "has space", "$LATEST"])
def test_alias_names_are_not_all_digits_or_odd_characters(alias: str) -> None:
    with pytest.raises(errors.InvalidParameterValue):
        names.validate_alias_name(alias)


def test_the_namespace_comes_from_the_caller_not_the_arn() -> None:
    """An ARN names an account, not a namespace: a caller bound to team-a addresses
    team-a's function whatever account the ARN carries."""
    ref = names.parse_function_ref(
        "arn:aws:lambda:us-east-1:123456789012:function:hello", namespace="team-a"
    )

    assert ref.key == FunctionKey("team-a", "hello")
