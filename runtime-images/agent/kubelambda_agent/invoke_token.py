"""The instance's invoke token: only who presents it may run the function.

The invoke port listens on an address other processes can reach (any local user in
embedded mode, any pod in the cluster). The gateway authenticates callers and enforces
reserved concurrency; a request straight to the port would skip both. So every instance
gets a random secret and ``POST /invoke`` is refused (403, nothing runs) unless the
request carries it in ``protocol.INVOKE_TOKEN``. ``GET /ready`` stays open (it is the
pod's readiness probe): it runs nothing, and without the token it answers only its
status, not how many runtimes are busy.

Who sets it, and how it stays secret from the function:

* The launcher puts it in ``KUBELAMBDA_AGENT_INVOKE_TOKEN`` (``config`` refuses to start
  without one), and hands the same value to the gateway with the instance's endpoint
  (``kubelambda.ports.endpoints.Endpoint.token``). In embedded mode the local backend
  generates one per instance and gives it to the agent when it assigns the agent (a
  pre-started spare gets it with its assignment, on its stdin, never at its start).
* The function is untrusted and runs as the agent's user, so ``conceal`` removes the
  variable from the agent's environment before any runtime starts (runtimes get no
  ``KUBELAMBDA_AGENT_*`` variable, see ``environment``) and makes the agent's process
  non-dumpable, which closes ``/proc/<agent>/environ`` and ``/proc/<agent>/mem`` to
  processes of the same user (the runtimes are exec'd, so they are dumpable again and
  their own ``/proc`` works as usual).
* In Kubernetes mode the same header is required: the controller creates one Secret per
  instance's version (its token, rotated with the version), the pod reads it into
  ``KUBELAMBDA_AGENT_INVOKE_TOKEN`` through ``secretKeyRef``, and the gateway's endpoint
  source reads the Secret beside the EndpointSlice to fill ``Endpoint.token``. A
  NetworkPolicy admitting only the gateway to the invoke port is added on top of the
  token, never instead of it: a policy does not stop other pods the policy admits, nor
  a CNI that does not enforce policies.
"""

from __future__ import annotations

import hmac
import os
import sys
from collections.abc import MutableMapping

__all__ = ["VARIABLE", "conceal", "matches"]

VARIABLE = "KUBELAMBDA_AGENT_INVOKE_TOKEN"
_PR_SET_DUMPABLE = 4


def matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison, so the answer time tells nothing about the token."""
    if not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode("latin-1"))


def conceal(*environs: MutableMapping[str, str]) -> None:
    """Drop the token from ``environs`` (and ``os.environ``), and make this process's
    memory and initial environment unreadable to other processes of its user."""
    for environ in (os.environ, *environs):
        environ.pop(VARIABLE, None)
    if sys.platform == "linux":
        import ctypes  # not at module level: ~2 ms, paid only here

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
