"""Why ``kubelambda up`` refuses to start, said in one sentence to the user.

    PlatformStartError     permanent: the home is in use by a running platform, or the
                           port is taken; ``cli`` prints the message and exits 1

Raised by ``home.lock`` and ``embedded.run`` before anything is served.
"""

from __future__ import annotations

__all__ = ["PlatformStartError"]


class PlatformStartError(Exception):
    """The platform cannot start; ``str()`` is the sentence for the user."""
