"""Pure builders for one local instance: its environment, log stream name and log path.

``controller.backends.local`` calls ``instance_environment`` before spawning an agent
process. The variables are what Lambda gives a function (``_HANDLER``,
``AWS_LAMBDA_*``, ...) plus the ``KUBELAMBDA_AGENT_*`` settings the runtime agent reads.
Nothing of the platform's own environment is passed on except a short allow-list, so
the platform's secrets never reach function code.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from controller import errors
from kubelambda import runtimes
from kubelambda.models import DEFAULT_NAMESPACE, FunctionVersion

__all__ = [
    "DEFAULT_LOG_MAX_BYTES",
    "INHERITED_VARIABLES",
    "INVOKE_TOKEN_VARIABLE",
    "InitializationType",
    "instance_environment",
    "log_path",
    "log_stream_name",
]


class InitializationType(StrEnum):
    """``AWS_LAMBDA_INITIALIZATION_TYPE``: why the instance was started."""

    ON_DEMAND = "on-demand"
    PROVISIONED = "provisioned-concurrency"


# ``kubelambda_agent.invoke_token.VARIABLE``; the controller does not import the agent.
INVOKE_TOKEN_VARIABLE = "KUBELAMBDA_AGENT_INVOKE_TOKEN"

# Where an instance's log is rotated: at most this in ``<instance>.log`` and as much in
# ``<instance>.log.1``, however much the function prints.
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024

# What a process needs from the host to find programs and decode text; nothing else.
INHERITED_VARIABLES = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")


def log_stream_name(version: str, instance_id: str, started: datetime) -> str:
    """Lambda's form, ``2024/05/01/[$LATEST]0123abcd...``: UTC date, version, instance."""
    return f"{started:%Y/%m/%d}/[{version}]{instance_id}"


def log_path(home: Path, version: FunctionVersion, instance_id: str) -> Path:
    """``logs/<function>/<version>/`` in the default namespace (the layout users know),
    ``logs/<namespace>/<function>/<version>/`` in any other."""
    parts = [version.function_name, version.version]
    if version.namespace != DEFAULT_NAMESPACE:
        parts.insert(0, version.namespace)
    return home.joinpath("logs", *parts, f"{instance_id}.log")


def instance_environment(
    version: FunctionVersion,
    *,
    task_root: Path,
    instance_id: str,
    concurrency: int,
    initialization_type: InitializationType,
    region: str,
    started: datetime,
    host_environ: Mapping[str, str],
    invoke_token: str,
    log_file: Path,
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES,
) -> dict[str, str]:
    """The environment of one agent process (and, through it, of the runtime).

    ``local_process.assign`` adds ``KUBELAMBDA_AGENT_READY_FD`` (the spare's pipe).
    ``invoke_token`` is new for every instance and reaches the agent with its assignment,
    so a spare agent has none until it is given a function.

    Raises ``RuntimeUnavailable`` when this host has no interpreter for the runtime.
    The function's own variables come first, so Lambda's reserved names always win
    (the management API rejects them anyway; this keeps a bad record harmless).
    """
    env = {name: host_environ[name] for name in INHERITED_VARIABLES if name in host_environ}
    env.update(version.environment)
    env.update(
        {
            "_HANDLER": version.handler,
            "LAMBDA_TASK_ROOT": str(task_root),
            "AWS_LAMBDA_FUNCTION_NAME": version.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": version.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(version.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{version.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream_name(version.version, instance_id, started),
            "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{version.runtime}",
            "TZ": ":UTC",
            "KUBELAMBDA_AGENT_LISTEN": "127.0.0.1:0",
            "KUBELAMBDA_AGENT_CONCURRENCY": str(concurrency),
            "KUBELAMBDA_AGENT_RUNTIME": version.runtime,
            "KUBELAMBDA_AGENT_TIMEOUT_SECONDS": str(version.timeout),
            # The agent takes it out of its environment before the function starts.
            INVOKE_TOKEN_VARIABLE: invoke_token,
            # The agent rotates its log there, keeping one previous file (``<log>.1``).
            "KUBELAMBDA_AGENT_LOG_FILE": str(log_file),
            "KUBELAMBDA_AGENT_LOG_MAX_BYTES": str(log_max_bytes),
        }
    )
    if not runtimes.is_provided(version.runtime):
        python = runtimes.find_python(version.runtime, host_environ)
        if python is None:
            raise errors.RuntimeUnavailable(version.runtime)
        env["KUBELAMBDA_AGENT_PYTHON"] = python
    return env
