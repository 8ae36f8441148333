"""Function name forms Lambda accepts, and the qualifier rules between them."""

import pytest

from kubelambda import errors, names


@pytest.mark.parametrize(
    ("function_name", "qualifier", "expected"),
    [
        ("hello", None, names.FunctionRef("hello", None)),
        ("hello", "$LATEST", names.FunctionRef("hello", "$LATEST")),
        ("hello:live", None, names.FunctionRef("hello", "live")),
        ("hello:7", "7", names.FunctionRef("hello", "7")),
        ("123456789012:function:hello", None, names.FunctionRef("hello", None)),
        ("123456789012:function:hello:live", None, names.FunctionRef("hello", "live")),
        (
            "arn:aws:lambda:eu-west-1:123456789012:function:hello",
            "3",
            names.FunctionRef("hello", "3"),
        ),
        (
            "arn:aws:lambda:us-east-1:000000000000:function:hello:$LATEST",
            None,
            names.FunctionRef("hello", "$LATEST"),
        ),
    ],
)
def test_parse_function_ref_accepts_lambda_forms(
    function_name: str, qualifier: str | None, expected: names.FunctionRef
) -> None:
    assert names.parse_function_ref(function_name, qualifier) == expected


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
        names.parse_function_ref(function_name, qualifier)


def test_function_arn_is_qualified_only_when_asked() -> None:
    assert names.function_arn("f") == "arn:aws:lambda:us-east-1:000000000000:function:f"
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
