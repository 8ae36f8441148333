"""The zygote's two sides agree on what they cannot import from each other."""

from controller.backends import agent_zygote, local_zygote


def test_both_sides_name_the_control_descriptor_alike() -> None:
    assert agent_zygote.CONTROL_FD_VARIABLE == local_zygote.CONTROL_FD_VARIABLE
