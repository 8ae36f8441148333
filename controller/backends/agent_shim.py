"""A runtime agent started ahead of need, waiting to be told which function it runs.

``controller.backends.local_process`` starts every agent as
``python -m controller.backends.agent_shim`` and keeps one or more such processes spare.
A spare has already paid for the interpreter's start and the agent's imports (asyncio
among them), which otherwise sit on the scale-from-zero path before the agent can even
start its runtimes. When an instance is needed the backend writes one JSON line on the
spare's stdin: the instance's environment, its log file and, when the platform runs as
root, the user it runs as (``local_users``). The shim enters the log's directory, becomes
that user (no supplementary groups; nothing of root is kept), points stdout and stderr
at the log, replaces its environment, and runs the agent's ordinary entry point
(``kubelambda_agent.__main__.main``), so the agent cannot tell it was started early. The
agent then reaches its log by name (``KUBELAMBDA_AGENT_LOG_FILE``), from its working
directory: as another user it could not walk the path from ``/`` to it (``local_files``).

Given a python runtime's command (``RUNTIME_VARIABLE``, a JSON list), a spare also starts
that runtime ahead of need, before it waits (``kubelambda_agent.prestarted``): the agent's
first slot takes it if the function's runtime would have been started the same way.

End of stdin without an assignment (the backend is closing) ends the process quietly.
With ``--zygote`` the process forks spares instead of being one (``agent_zygote``).
On Linux the shim dies with the platform (the parent-death signal its first line asks
for, and asks for again after a change of user, which clears it), whether spare or
assigned, and its runtimes die with it.
Only the standard library and the agent are imported here: this runs in the agent's
process, not the platform's.
"""

from __future__ import annotations

import ctypes  # noqa: F401  (warmed too: invoke_token.conceal needs it before the runtimes)
import json
import os
import sys
import time

# Imported now, while nobody waits: this is the time a spare saves.
import kubelambda_agent.__main__ as agent_main
import kubelambda_agent.agent  # noqa: F401  (imported lazily by main; warm it too)
from kubelambda_agent import prestarted as agent_prestarted
from kubelambda_agent import process as agent_process

# local_process.SPARE_RUNTIME_VARIABLE
RUNTIME_VARIABLE = "KUBELAMBDA_SPARE_RUNTIME"


def main() -> int:
    parent = os.environ.get("KUBELAMBDA_PLATFORM_PID")  # local_process.PARENT_PID_VARIABLE
    if parent is not None:
        agent_process.die_with_parent(int(parent))
    runtime = os.environ.get(RUNTIME_VARIABLE)
    prestarted = None
    if runtime is not None:
        prestarted = agent_prestarted.start(json.loads(runtime), os.environ)
    line = sys.stdin.buffer.readline()
    if not line:
        return 0
    assignment = json.loads(line)
    log_directory, log_name = os.path.split(assignment["log"])
    os.chdir(log_directory)
    user = assignment.get("user")
    if user is not None:
        become(uid=user["uid"], gid=user["gid"])
        if parent is not None:
            agent_process.die_with_parent(int(parent))
    log = os.open(log_name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ.clear()
    os.environ.update(assignment["environ"])
    os.environ["KUBELAMBDA_AGENT_LOG_FILE"] = log_name
    time.tzset()  # TZ came with the assignment; the agent's log timestamps follow it
    return agent_main.main(prestarted)


def become(*, uid: int, gid: int) -> None:
    """Run as ``uid``/``gid`` from now on, real, effective and saved alike (no way back),
    in no supplementary group. The kernel also makes the process non-dumpable, which
    closes its ``/proc`` entries to the user's other processes."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


if __name__ == "__main__":
    if sys.argv[1:] == ["--zygote"]:
        from controller.backends import agent_zygote

        sys.exit(agent_zygote.main(main))
    sys.exit(main())
