"""Registers the runtime agent fixtures (defined in ``agent_harness``) for this folder."""

from agent_harness import echo_function, start_agent

__all__ = ["echo_function", "start_agent"]
