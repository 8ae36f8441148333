"""Which user each function's instances run as: one per function, stable, in range."""

from __future__ import annotations

import pytest

from controller.backends.local_users import COUNT, InstanceUsers

BASE = 1_999_000_000


def test_a_function_keeps_its_user_across_runs() -> None:
    first_run, second_run = InstanceUsers(BASE), InstanceUsers(BASE)

    assert first_run.user_for("default", "orders") == second_run.user_for("default", "orders")
    assert first_run.user_for("default", "orders") == first_run.user_for("default", "orders")


def test_the_user_is_in_the_range_past_its_first_uid_with_the_gid_of_its_number() -> None:
    user = InstanceUsers(BASE).user_for("default", "orders")

    assert BASE < user.uid < BASE + COUNT
    assert user.gid == user.uid


def test_namespaces_tell_functions_of_one_name_apart() -> None:
    users = InstanceUsers(BASE)

    assert users.user_for("team-a", "orders") != users.user_for("team-b", "orders")


def test_no_two_functions_of_a_run_share_a_user() -> None:
    # Thousands of names in a million uids: some hash to the same one (birthday bound).
    users = InstanceUsers(BASE)
    uids = [users.user_for("default", f"fn-{n}").uid for n in range(5000)]

    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("base", [0, 2**31 - COUNT + 1])
def test_a_range_past_the_valid_uids_is_refused(base: int) -> None:
    with pytest.raises(ValueError, match="not all in"):
        InstanceUsers(base)
