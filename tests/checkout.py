"""This checkout's code, for tests that start processes of their own.

An installed (editable) kubelambda may point at another checkout; a child process started
from a platform's home would import that one. Tests run the code they check out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["AGENT_COMMAND", "AGENT_SOURCE", "ROOT", "ZYGOTE_COMMAND"]

ROOT = Path(__file__).resolve().parents[1]
AGENT_SOURCE = ROOT / "runtime-images" / "agent"

# ``local_process.AGENT_COMMAND`` and ``local_zygote.ZYGOTE_COMMAND``, with this checkout
# first on the agent's import path.
AGENT_COMMAND: tuple[str, ...] = (
    "/usr/bin/env",
    f"PYTHONPATH={ROOT}{os.pathsep}{AGENT_SOURCE}",
    sys.executable,
    "-m",
    "controller.backends.agent_shim",
)
ZYGOTE_COMMAND: tuple[str, ...] = (*AGENT_COMMAND, "--zygote")
