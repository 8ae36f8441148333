"""The platform's open-file limit, raised to the hard limit when it starts serving.

The gateway holds a descriptor for every client connection (a request waiting in the
activator keeps its connection open) and for every agent connection; with the soft
limit most sessions and services start with (1,024), a few hundred callers made
``accept`` fail with EMFILE, connections were reset, and spare agents could not start.
The processes the platform starts inherit the raised limit; the agent gives function
runtimes Lambda's 1,024 back (``kubelambda_agent.process``).
"""

from __future__ import annotations

import logging
import resource

__all__ = ["raise_open_file_limit"]

log = logging.getLogger(__name__)


def raise_open_file_limit() -> None:
    """Raise this process's soft limit on open files to its hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log.info("open file limit raised from=%d to=%d", soft, hard)
