"""The environment each runtime process starts with.

``slot`` calls ``runtime_environment`` before every (re)start of a runtime. The launcher
has already put the function's Lambda variables and the user's variables in the agent's
own environment; this drops the agent's private settings (the invoke token among them:
the function must not be able to read it, see ``invoke_token``) and adds what only the agent
knows (the runtime's own Runtime API address) plus Lambda's defaults for anything missing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["AGENT_PREFIX", "runtime_environment", "slot_environment"]

AGENT_PREFIX = "KUBELAMBDA_AGENT_"

_DEFAULT_REGION = "us-east-1"
_DEFAULTS = {
    "TZ": ":UTC",
    "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
}
# Set by Lambda only for its multi-concurrency mode: awslambdaric then forks workers and
# polls differently, which is not how our one-event-per-runtime slots work.
_FORBIDDEN = ("AWS_LAMBDA_MAX_CONCURRENCY",)
# What a slot's own ``TMPDIR`` is called under the instance's private one.
_DIRECTORY_PREFIX = "environment-"


def slot_environment(base: Mapping[str, str], index: int) -> dict[str, str]:
    """The variables of slot ``index`` in an agent whose slots are execution environments
    of their own (``AgentConfig.separate_environments``): a ``TMPDIR`` and ``HOME`` of its
    own under the instance's private directory, when the instance has one. The log
    stream stays the instance's: it names the log file every slot writes to, and it is
    how the launcher finds every process of the instance (``local_process.sweep``)."""
    env = dict(base)
    private = base.get("TMPDIR")
    if private:
        env["TMPDIR"] = env["HOME"] = os.path.join(private, f"{_DIRECTORY_PREFIX}{index}")
    return env


def runtime_environment(
    base: Mapping[str, str], *, runtime: str, api_address: str, runtime_dir: str
) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith(AGENT_PREFIX)}
    for name in _FORBIDDEN:
        env.pop(name, None)
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or _DEFAULT_REGION
    env.setdefault("AWS_REGION", region)
    env.setdefault("AWS_DEFAULT_REGION", region)
    for name, value in _DEFAULTS.items():
        env.setdefault(name, value)
    env["AWS_LAMBDA_RUNTIME_API"] = api_address
    env["LAMBDA_RUNTIME_DIR"] = runtime_dir
    env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{runtime}"
    return env
