"""Object names of the custom resources, from Lambda names."""

from __future__ import annotations

import pytest

from kubelambda.kubernetes import object_names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hello", "hello"),
        ("hello-world-2", "hello-world-2"),
        ("My_Fn", "my-fn-2a3d4a68"),
        ("_x_", "x-" + object_names.function_object_name("_x_")[-8:]),
        ("a" * 64, "a" * 54 + "-ffe054fe"),
    ],
)
def test_function_object_names(name, expected):
    assert object_names.function_object_name(name) == expected


@pytest.mark.parametrize("name", ["My_Fn", "my_fn", "MY-FN", "a" * 64, "-lead", "9" * 64])
def test_every_function_object_name_is_a_dns_label(name):
    assert object_names.is_dns_label(object_names.function_object_name(name))


def test_names_that_sanitize_alike_stay_apart():
    assert object_names.function_object_name("My_Fn") != object_names.function_object_name("my_fn")


@pytest.mark.parametrize(
    ("function", "alias", "hashed", "expected"),
    [
        ("f", "live", False, "f-live"),
        ("f", "Live_1", False, "f-live-1-6784b523"),
        (
            "f",
            "live",
            True,
            "f-live-" + object_names.alias_object_name("f", "live", hashed=True)[-8:],
        ),
    ],
)
def test_alias_object_names(function, alias, hashed, expected):
    assert object_names.alias_object_name(function, alias, hashed=hashed) == expected


def test_a_hashed_alias_name_differs_from_the_plain_one_it_would_collide_with():
    # Function "a" with alias "b-c" and function "a-b" with alias "c" share a plain name.
    assert object_names.alias_object_name("a", "b-c") == object_names.alias_object_name("a-b", "c")
    assert object_names.alias_object_name("a", "b-c", hashed=True) != (
        object_names.alias_object_name("a-b", "c", hashed=True)
    )


def test_version_object_names():
    assert object_names.version_object_name("my-fn-2a3d4a68", "12") == "my-fn-2a3d4a68-v12"
