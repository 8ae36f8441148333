"""The Lambda runtimes kubelambda can run, and where their interpreters live on this host.

The management API asks which runtimes it may accept; the local instance backend asks
which interpreter starts a python runtime. Python runtimes run our built-in bootstrap
under the matching interpreter; ``provided*`` runtimes run the package's ``bootstrap``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "PROVIDED_RUNTIMES",
    "PYTHON_RUNTIMES",
    "available_runtimes",
    "find_python",
    "is_provided",
]

PYTHON_RUNTIMES = ("python3.11", "python3.12", "python3.13")
PROVIDED_RUNTIMES = ("provided.al2023", "provided.al2", "provided")

# Where interpreters are commonly installed when they are not on PATH (pyenv, system).
_SEARCH_ROOTS = (Path("/root/.pyenv/versions"), Path("/usr/local/bin"), Path("/usr/bin"))


def is_provided(runtime: str) -> bool:
    return runtime in PROVIDED_RUNTIMES


def find_python(runtime: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The interpreter for a ``python3.X`` runtime, or ``None`` when this host lacks it.

    ``KUBELAMBDA_PYTHON_3_12=/path/python`` (etc.) overrides the search.
    """
    if runtime not in PYTHON_RUNTIMES:
        return None
    env = os.environ if environ is None else environ
    version = runtime.removeprefix("python")
    override = env.get(f"KUBELAMBDA_PYTHON_{version.replace('.', '_')}")
    if override:
        return override if os.access(override, os.X_OK) else None
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    # pyenv puts shims on PATH for every version, which fail for the inactive ones.
    if found and "/shims/" not in found:
        return found
    for candidate in _candidates(version):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _candidates(version: str) -> list[Path]:
    found: list[Path] = []
    for root in _SEARCH_ROOTS:
        if root.name == "versions":
            found += sorted(root.glob(f"{version}.*/bin/python{version}"), reverse=True)
        else:
            found.append(root / f"python{version}")
    return found


def available_runtimes(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    pythons = tuple(r for r in PYTHON_RUNTIMES if find_python(r, environ) is not None)
    return pythons + PROVIDED_RUNTIMES
