"""Pure builders for one local instance: its environment and log path.

``controller.backends.local`` calls ``instance_environment`` before spawning an agent
process. The variables are what every instance gets
(``kubelambda.instance_environment``: Lambda's and the agent's) plus what a process on
this host needs: a listen address, an interpreter, the log's bound, the invoke token,
and, for an instance running as a user of its own, its private ``TMPDIR`` (its ``HOME``
too). Nothing of the platform's own environment is passed on except a short allow-list,
so the platform's secrets never reach function code. ``agent_shim`` names the log file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from kubelambda_agent import config as agent_config

from controller import errors
from kubelambda import runtimes
from kubelambda.instance_environment import (
    INVOKE_TOKEN_VARIABLE,
    InitializationType,
    function_environment,
    log_stream_name,
)
from kubelambda.models import DEFAULT_NAMESPACE, FunctionVersion

__all__ = [
    "DEFAULT_LOG_MAX_BYTES",
    "INHERITED_VARIABLES",
    "INVOKE_TOKEN_VARIABLE",
    "InitializationType",
    "instance_environment",
    "log_path",
]


# Where an instance's log is rotated: at most this in ``<instance>.log`` and as much in
# ``<instance>.log.1``, however much the function prints.
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024

# What a process needs from the host to find programs and decode text; nothing else.
INHERITED_VARIABLES = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")


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
    runtime_idle_seconds: float,
    initialization_type: InitializationType,
    region: str,
    started: datetime,
    host_environ: Mapping[str, str],
    invoke_token: str,
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES,
    private_directory: Path | None = None,
    runtime_directory: Path | None = None,
    usable: Callable[[str], bool] | None = None,
    environment_concurrency: int | None = None,
) -> dict[str, str]:
    """The environment of one agent process (and, through it, of the runtime).

    ``local_process.assign`` adds ``KUBELAMBDA_AGENT_READY_FD`` (the spare's pipe).
    ``invoke_token`` is new for every instance and reaches the agent with its assignment,
    so a spare agent has none until it is given a function. ``usable`` says whether the
    instance's user can run an interpreter (see ``runtimes.find_python``), and
    ``runtime_directory`` holds a bootstrap it can read (default: the agent's own).
    ``concurrency`` is the agent's: invocations it runs at once. With
    ``environment_concurrency`` it hosts several execution environments of that many
    each, and is told on its stdin how many are placed in it.

    Raises ``RuntimeUnavailable`` when this host has no interpreter for the runtime.
    """
    env = {name: host_environ[name] for name in INHERITED_VARIABLES if name in host_environ}
    env.update(
        function_environment(
            version,
            task_root=str(task_root),
            log_stream=log_stream_name(version.version, instance_id, started),
            initialization_type=initialization_type,
            concurrency=concurrency,
            region=region,
            runtime_idle_seconds=runtime_idle_seconds,
        )
    )
    env.update(
        {
            # An abstract Unix socket: cheaper than loopback TCP for the gateway's hop.
            "KUBELAMBDA_AGENT_LISTEN": agent_config.UNIX_LISTEN,
            # The agent takes it out of its environment before the function starts.
            INVOKE_TOKEN_VARIABLE: invoke_token,
            # Where the agent rotates its log, keeping one previous file (``<log>.1``).
            "KUBELAMBDA_AGENT_LOG_MAX_BYTES": str(log_max_bytes),
        }
    )
    if environment_concurrency is not None:
        env["KUBELAMBDA_AGENT_ENVIRONMENT_CONCURRENCY"] = str(environment_concurrency)
        # Its stdin: the backend tells it there how many environments are placed in it.
        env["KUBELAMBDA_AGENT_CONTROL_FD"] = "0"
    if private_directory is not None:
        env["TMPDIR"] = env["HOME"] = str(private_directory)
    if runtime_directory is not None:
        env["KUBELAMBDA_AGENT_RUNTIME_DIR"] = str(runtime_directory)
    if not runtimes.is_provided(version.runtime):
        python = runtimes.find_python(version.runtime, host_environ, usable=usable)
        if python is None:
            raise errors.RuntimeUnavailable(version.runtime)
        env["KUBELAMBDA_AGENT_PYTHON"] = python
    return env
