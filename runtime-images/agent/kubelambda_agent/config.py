"""The agent's configuration, parsed once at start from the environment the launcher gives it.

``__main__`` calls ``parse_config(os.environ)`` and hands the ``AgentConfig`` to
everything else. A bad value raises ``ConfigError`` whose message is written to stderr
before the agent exits non-zero, so a misconfigured instance fails loudly at spawn.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

__all__ = [
    "BOOTSTRAP_SCRIPT",
    "CHANNEL_FD_VARIABLE",
    "CODE_URL_VARIABLE",
    "PRESTARTED_VARIABLE",
    "PROVIDED_RUNTIMES",
    "PYTHON_RUNTIMES",
    "UNIX_LISTEN",
    "AgentConfig",
    "Announcement",
    "ConfigError",
    "parse_config",
    "python_runtime_command",
]

PYTHON_RUNTIMES = frozenset({"python3.11", "python3.12", "python3.13"})
PROVIDED_RUNTIMES = frozenset({"provided", "provided.al2", "provided.al2023"})

# Lambda's own bounds: 900 s is the longest function timeout it accepts.
MAX_TIMEOUT_SECONDS = 900.0
# A per-instance limit well above any sensible setting, so a typo cannot fork-bomb the node.
MAX_CONCURRENCY = 256
# An invoke token shorter than this is a mistake, not a secret (``invoke_token``).
MIN_INVOKE_TOKEN_CHARS = 32
# Where an instance log file is rotated (``log_file``), unless set otherwise.
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
# How long a runtime beyond an instance's first may stay idle before it is stopped, unless
# set otherwise: the platform's default idle timeout, after which Lambda would reclaim an
# idle execution environment (the backends pass the function's own).
DEFAULT_RUNTIME_IDLE_SECONDS = 300.0
# The invoke endpoint's accept queue: a burst of new gateway connections must not be dropped.
LISTEN_BACKLOG = 1024
# ``KUBELAMBDA_AGENT_LISTEN`` for an abstract Unix socket whose name the kernel picks (the
# ready line gives it): an exchange with a gateway on the same host costs less than over
# loopback TCP, and, as a port, the name is the agent's alone while it lives.
UNIX_LISTEN = "unix"

# Set in pods only: the package to fetch first (``fetch_code``, imported only then: its
# HTTP and TLS modules would cost every spare agent's start ~30 ms in embedded mode).
CODE_URL_VARIABLE = "KUBELAMBDA_CODE_URL"

BOOTSTRAP_SCRIPT = "python_bootstrap.py"
# Where a python runtime finds its channel to the agent (``runtime_channel``). The
# bootstrap, which imports nothing of the agent, spells it too (a test keeps them equal).
CHANNEL_FD_VARIABLE = "_KUBELAMBDA_RUNTIME_CHANNEL_FD"
# Set for a python runtime started ahead of need (``prestarted``): it waits for its
# assignment on the channel. The bootstrap spells it too.
PRESTARTED_VARIABLE = "_KUBELAMBDA_RUNTIME_PRESTARTED"
# Where the python runtimes' bootstrap is, unless KUBELAMBDA_AGENT_RUNTIME_DIR says otherwise.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class ConfigError(Exception):
    """The environment does not describe a runnable agent; the message says which variable."""


class Announcement:
    """Where and as what a pod's agent announces that it is ready (Kubernetes mode)."""

    __slots__ = ("ip", "namespace", "pod", "url")

    def __init__(self, *, url: str, namespace: str, pod: str, ip: str) -> None:
        self.url = url
        self.namespace = namespace
        self.pod = pod
        self.ip = ip


class AgentConfig:
    """The validated settings; nothing changes them after ``parse_config``.

    A plain class rather than a frozen dataclass on purpose: this module is imported
    before the first runtime is spawned, and ``dataclasses`` (with ``inspect``) would put
    several milliseconds on every cold start's critical path.
    """

    __slots__ = (
        "announcement",
        "concurrency",
        "control_fd",
        "environment_concurrency",
        "function_version",
        "initialized_ahead",
        "invoke_token",
        "listen_host",
        "listen_port",
        "log_file",
        "log_max_bytes",
        "memory_size_mb",
        "python",
        "ready_fd",
        "runtime",
        "runtime_dir",
        "runtime_idle_seconds",
        "task_root",
        "timeout_seconds",
    )

    def __init__(
        self,
        *,
        listen_host: str,
        listen_port: int,
        concurrency: int,
        runtime: str,
        python: str,
        timeout_seconds: float,
        ready_fd: int | None,
        task_root: str,
        function_version: str,
        memory_size_mb: int,
        invoke_token: str,
        log_file: str | None = None,
        log_max_bytes: int = DEFAULT_LOG_MAX_BYTES,
        initialized_ahead: bool = False,
        announcement: Announcement | None = None,
        runtime_dir: str = _PACKAGE_DIR,
        runtime_idle_seconds: float = DEFAULT_RUNTIME_IDLE_SECONDS,
        environment_concurrency: int | None = None,
        control_fd: int | None = None,
    ) -> None:
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.concurrency = concurrency
        self.runtime = runtime
        self.python = python
        self.timeout_seconds = timeout_seconds
        self.ready_fd = ready_fd
        self.task_root = task_root
        self.function_version = function_version
        self.memory_size_mb = memory_size_mb
        self.invoke_token = invoke_token
        self.log_file = log_file
        self.log_max_bytes = log_max_bytes
        # Provisioned concurrency: runtimes initialise before any invocation is waiting,
        # so no invocation reports their init (as on Lambda).
        self.initialized_ahead = initialized_ahead
        self.announcement = announcement
        # ``LAMBDA_RUNTIME_DIR``: where the runtime's own files (our bootstrap) live.
        self.runtime_dir = runtime_dir
        # A runtime other than the first one idle this long is stopped (``agent``).
        self.runtime_idle_seconds = runtime_idle_seconds
        # Slots per execution environment when the agent hosts several (the embedded
        # platform places environments of one function in one agent); ``None``: the
        # agent is one environment of ``concurrency`` slots.
        self.environment_concurrency = environment_concurrency
        # Where the launcher tells how many environments are placed here (``control``).
        self.control_fd = control_fd

    @property
    def slots_per_environment(self) -> int:
        """Invocations one execution environment hosted here runs at once."""
        return self.environment_concurrency or self.concurrency

    @property
    def hosted_environments(self) -> int:
        """How many execution environments the agent may host at most."""
        return self.concurrency // self.slots_per_environment

    @property
    def separate_environments(self) -> bool:
        """Every slot is an environment of its own, with a ``TMPDIR`` and ``HOME`` of its
        own (``environment``). Environments of several slots share the instance's, as the
        runtimes of one environment do: which of them an invocation lands in is the
        gateway's choice, so the function cannot tell them apart anyway."""
        return self.environment_concurrency == 1

    @property
    def runtime_command(self) -> list[str]:
        """The command that starts one runtime process (run with cwd = task root)."""
        if self.runtime in PYTHON_RUNTIMES:
            return python_runtime_command(self.python, self.runtime_dir)
        return [os.path.join(self.task_root, "bootstrap")]


def python_runtime_command(python: str, runtime_dir: str = _PACKAGE_DIR) -> list[str]:
    """The command of a python runtime: our bootstrap (in ``runtime_dir``) under ``python``."""
    # -u: print() must reach the log at once, not when a buffer fills.
    return [python, "-u", os.path.join(runtime_dir, BOOTSTRAP_SCRIPT)]


def parse_config(environ: Mapping[str, str]) -> AgentConfig:
    """Validate the ``KUBELAMBDA_AGENT_*`` variables (and the Lambda ones the agent reads).

    ``KUBELAMBDA_AGENT_INVOKE_TOKEN`` is required; ``invoke_token`` says who sets it and
    how it is kept from the function."""
    host, port = _parse_listen(environ.get("KUBELAMBDA_AGENT_LISTEN", "0.0.0.0:8080"))
    runtime = environ.get("KUBELAMBDA_AGENT_RUNTIME", "")
    if runtime not in PYTHON_RUNTIMES | PROVIDED_RUNTIMES:
        known = ", ".join(sorted(PYTHON_RUNTIMES | PROVIDED_RUNTIMES))
        raise ConfigError(f"KUBELAMBDA_AGENT_RUNTIME={runtime!r} is not one of: {known}")
    python = environ.get("KUBELAMBDA_AGENT_PYTHON") or sys.executable
    if runtime in PYTHON_RUNTIMES and not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise ConfigError(f"KUBELAMBDA_AGENT_PYTHON={python!r} is not an executable file")
    concurrency = _parse_int(
        environ, "KUBELAMBDA_AGENT_CONCURRENCY", default=1, low=1, high=MAX_CONCURRENCY
    )
    task_root = environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    if not os.path.isdir(task_root):
        raise ConfigError(f"LAMBDA_TASK_ROOT={task_root!r} is not a directory")
    return AgentConfig(
        listen_host=host,
        listen_port=port,
        concurrency=concurrency,
        runtime=runtime,
        python=python,
        timeout_seconds=_parse_timeout(environ.get("KUBELAMBDA_AGENT_TIMEOUT_SECONDS", "3")),
        ready_fd=_parse_fd("KUBELAMBDA_AGENT_READY_FD", environ),
        task_root=task_root,
        function_version=environ.get("AWS_LAMBDA_FUNCTION_VERSION") or "$LATEST",
        memory_size_mb=_parse_int(
            environ, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", default=128, low=1, high=1 << 20
        ),
        invoke_token=_parse_invoke_token(environ.get("KUBELAMBDA_AGENT_INVOKE_TOKEN", "")),
        log_file=environ.get("KUBELAMBDA_AGENT_LOG_FILE") or None,
        initialized_ahead=(
            environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "provisioned-concurrency"
        ),
        log_max_bytes=_parse_int(
            environ,
            "KUBELAMBDA_AGENT_LOG_MAX_BYTES",
            default=DEFAULT_LOG_MAX_BYTES,
            low=64 * 1024,
            high=1 << 40,
        ),
        announcement=_parse_announcement(environ),
        runtime_dir=_parse_runtime_dir(environ.get("KUBELAMBDA_AGENT_RUNTIME_DIR", "")),
        runtime_idle_seconds=_parse_runtime_idle(
            environ.get("KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS", "")
        ),
        environment_concurrency=_parse_environment_concurrency(environ, concurrency),
        control_fd=_parse_fd("KUBELAMBDA_AGENT_CONTROL_FD", environ),
    )


def _parse_environment_concurrency(environ: Mapping[str, str], concurrency: int) -> int | None:
    name = "KUBELAMBDA_AGENT_ENVIRONMENT_CONCURRENCY"
    if name not in environ:
        return None
    value = _parse_int(environ, name, default=0, low=1, high=concurrency)
    if value == 0 or concurrency % value:
        raise ConfigError(
            f"{name}={environ[name]!r} must divide KUBELAMBDA_AGENT_CONCURRENCY={concurrency}"
        )
    return value


def _parse_runtime_dir(directory: str) -> str:
    # A copy of the bootstrap the function's user can read, when that user cannot reach
    # the agent's own package (embedded mode as root: the platform's install may be
    # under /root).
    if not directory:
        return _PACKAGE_DIR
    if not os.path.isfile(os.path.join(directory, BOOTSTRAP_SCRIPT)):
        raise ConfigError(f"KUBELAMBDA_AGENT_RUNTIME_DIR={directory!r} holds no {BOOTSTRAP_SCRIPT}")
    return directory


def _parse_announcement(environ: Mapping[str, str]) -> Announcement | None:
    url = environ.get("KUBELAMBDA_AGENT_ANNOUNCE_URL", "")
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"KUBELAMBDA_AGENT_ANNOUNCE_URL={url!r} is not an http(s) URL")
    values = {}
    for field, name in (
        ("namespace", "KUBELAMBDA_POD_NAMESPACE"),
        ("pod", "KUBELAMBDA_POD_NAME"),
        ("ip", "KUBELAMBDA_POD_IP"),
    ):
        values[field] = environ.get(name, "")
        if not values[field]:
            raise ConfigError(f"{name} must be set with KUBELAMBDA_AGENT_ANNOUNCE_URL")
    return Announcement(url=url, **values)


def _parse_invoke_token(token: str) -> str:
    # Required: an agent without one would run anything anyone on the network sends it.
    if len(token) < MIN_INVOKE_TOKEN_CHARS or not token.isascii() or not token.isprintable():
        raise ConfigError(
            "KUBELAMBDA_AGENT_INVOKE_TOKEN must be set to at least "
            f"{MIN_INVOKE_TOKEN_CHARS} printable ASCII characters"
        )
    return token


def _parse_listen(value: str) -> tuple[str, int]:
    if value == UNIX_LISTEN:
        return UNIX_LISTEN, 0
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(
            f"KUBELAMBDA_AGENT_LISTEN={value!r} must be host:port (port 0-65535) or {UNIX_LISTEN}"
        )
    # "[::]:8080" names an IPv6 address; the socket API wants it without brackets.
    host = host.removeprefix("[").removesuffix("]")
    return host or "0.0.0.0", int(port_text)


def _parse_int(environ: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    text = environ.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


def _parse_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"KUBELAMBDA_AGENT_TIMEOUT_SECONDS={text!r} is not a number") from None
    if not 0 < value <= MAX_TIMEOUT_SECONDS:
        raise ConfigError(
            f"KUBELAMBDA_AGENT_TIMEOUT_SECONDS={value} is outside (0, {MAX_TIMEOUT_SECONDS:g}]"
        )
    return value


def _parse_runtime_idle(text: str) -> float:
    if not text:
        return DEFAULT_RUNTIME_IDLE_SECONDS
    try:
        value = float(text)
    except ValueError:
        message = f"KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS={text!r} is not a number"
        raise ConfigError(message) from None
    if not value > 0:
        raise ConfigError(f"KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS={value} is not positive")
    return value


def _parse_fd(name: str, environ: Mapping[str, str]) -> int | None:
    text = environ.get(name, "")
    if not text:
        return None
    if not text.isdigit():
        raise ConfigError(f"{name}={text!r} is not a file descriptor number")
    fd = int(text)
    try:
        os.fstat(fd)
    except OSError:
        raise ConfigError(f"{name}={fd} is not an open file descriptor") from None
    return fd
