"""``python -m kubelambda_agent``: validate the configuration, start a runtime, serve.

The launcher (embedded mode's local instance backend, or a container's entrypoint) runs
this. Scale-from-zero latency is spawn-to-first-answer, so the first runtime is started
before asyncio and the rest of the agent are even imported: the runtime's own start-up
then overlaps the agent's, and the Runtime API sockets are bound already so a runtime's
first ``/next`` waits in the listen backlog until the agent serves it. The other slots'
runtimes start when invocations need them (``slot``), except for provisioned
concurrency, whose instances initialise every runtime before they are ready.
"""

from __future__ import annotations

import os
import socket
import sys

from kubelambda_agent import invoke_token, process
from kubelambda_agent.config import (
    CODE_URL_VARIABLE,
    LISTEN_BACKLOG,
    UNIX_LISTEN,
    ConfigError,
    parse_config,
)
from kubelambda_agent.environment import slot_environment

# Annotations only: typing would cost every cold start a few milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from kubelambda_agent.prestarted import PrestartedRuntime


def _listen(host: str, port: int) -> socket.socket:
    if host == UNIX_LISTEN:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind("")  # an empty name: the kernel picks a unique abstract one
        sock.listen(LISTEN_BACKLOG)
        return sock
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)


def main(prestarted: PrestartedRuntime | None = None) -> int:
    process.raise_open_file_limit()
    environ = dict(os.environ)
    if CODE_URL_VARIABLE in environ:
        # In a pod the package comes first (nothing can run without it), and where it
        # came from, with the token to fetch it, is none of the function's business.
        from kubelambda_agent import fetch_code

        status = fetch_code.main(environ)
        if status != 0:
            return status
        for name in fetch_code.VARIABLES:
            environ.pop(name, None)
            os.environ.pop(name, None)
    try:
        config = parse_config(environ)
    except ConfigError as exc:
        print(f"kubelambda-agent: invalid configuration: {exc}", file=sys.stderr)
        return 2
    # Before any runtime exists: the function must never be able to read its token.
    invoke_token.conceal(environ)
    try:
        invoke_listener = _listen(config.listen_host, config.listen_port)
    except OSError as exc:
        address = f"{config.listen_host}:{config.listen_port}"
        print(f"kubelambda-agent: cannot listen on {address}: {exc}", file=sys.stderr)
        return 2
    # Before any runtime exists: whatever a runtime abandons is re-parented to us.
    process.adopt_orphans()
    slot_environs = [
        slot_environment(environ, index) if config.separate_environments else environ
        for index in range(config.concurrency)
    ]
    started_ahead = config.concurrency if config.initialized_ahead else 1
    api_listeners = [_listen("127.0.0.1", 0) for _ in range(started_ahead)]
    first_runtimes: list[process.RuntimeProcess | process.SpawnError | None] = [
        process.spawn_runtime(
            config,
            slot_environs[index],
            api_address=f"127.0.0.1:{sock.getsockname()[1]}",
            prestarted=prestarted if index == 0 else None,
        )
        for index, sock in enumerate(api_listeners)
    ]
    # The other slots' listeners once the first runtime starts: not on its path.
    api_listeners += [_listen("127.0.0.1", 0) for _ in range(started_ahead, config.concurrency)]
    first_runtimes += [None] * (config.concurrency - started_ahead)
    # Imported only now, while the runtimes start (see the module docstring).
    from kubelambda_agent import agent

    return agent.run(
        config,
        slot_environs,
        invoke_listener=invoke_listener,
        api_listeners=api_listeners,
        first_runtimes=first_runtimes,
    )


if __name__ == "__main__":
    sys.exit(main())
