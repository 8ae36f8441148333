"""The environment every function instance gets, wherever it runs: Lambda's variables.

Both instance backends build on ``function_environment``: the local one
(``controller.backends.local_env``) adds a listen address, an interpreter and a log file
on this host; the Kubernetes one (``kubelambda.kubernetes.workloads``) puts the same
variables into a pod template. The function's own variables come first, so Lambda's
reserved names always win (the management API rejects them anyway; this keeps a bad
record harmless).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from kubelambda.models import FunctionVersion

__all__ = [
    "INVOKE_TOKEN_VARIABLE",
    "InitializationType",
    "function_environment",
    "log_stream_name",
]

# ``kubelambda_agent.invoke_token.VARIABLE``: the agent takes it out of its environment
# before the function starts (nothing of ours imports the agent).
INVOKE_TOKEN_VARIABLE = "KUBELAMBDA_AGENT_INVOKE_TOKEN"


class InitializationType(StrEnum):
    """``AWS_LAMBDA_INITIALIZATION_TYPE``: why the instance was started."""

    ON_DEMAND = "on-demand"
    PROVISIONED = "provisioned-concurrency"


def log_stream_name(version: str, instance_id: str, started: datetime) -> str:
    """Lambda's form, ``2024/05/01/[$LATEST]0123abcd...``: UTC date, version, instance."""
    return f"{started:%Y/%m/%d}/[{version}]{instance_id}"


def function_environment(
    version: FunctionVersion,
    *,
    task_root: str,
    log_stream: str,
    initialization_type: InitializationType,
    concurrency: int,
    region: str,
    runtime_idle_seconds: float,
) -> dict[str, str]:
    """The function's variables, Lambda's reserved ones, and the agent's settings that do
    not depend on where the instance runs. ``runtime_idle_seconds`` is the function's idle
    timeout: an instance of concurrency above one stops the runtimes beyond its first that
    stay idle that long."""
    env = dict(version.environment)
    env.update(
        {
            "_HANDLER": version.handler,
            "LAMBDA_TASK_ROOT": task_root,
            "AWS_LAMBDA_FUNCTION_NAME": version.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": version.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(version.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{version.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{version.runtime}",
            "TZ": ":UTC",
            "KUBELAMBDA_AGENT_CONCURRENCY": str(concurrency),
            "KUBELAMBDA_AGENT_RUNTIME": version.runtime,
            "KUBELAMBDA_AGENT_TIMEOUT_SECONDS": str(version.timeout),
        }
    )
    if concurrency > 1:
        env["KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS"] = str(runtime_idle_seconds)
    return env
