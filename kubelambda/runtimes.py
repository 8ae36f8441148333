"""The Lambda runtimes kubelambda can run, and where their interpreters live on this host.

The management API asks which runtimes it may accept; the local instance backend asks
which interpreter starts a python runtime. Python runtimes run our built-in bootstrap
under the matching interpreter; ``provided*`` runtimes run the package's ``bootstrap``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
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


def find_python(
    runtime: str,
    environ: Mapping[str, str] | None = None,
    *,
    usable: Callable[[str], bool] | None = None,
) -> str | None:
    """The interpreter for a ``python3.X`` runtime, or ``None`` when this host lacks it.

    ``KUBELAMBDA_PYTHON_3_12=/path/python`` (etc.) overrides the search. ``usable``
    narrows it to interpreters the functions' processes can run (when they run as other
    users than the platform, see ``controller.backends.local_users``): the first
    candidate it accepts is taken. A virtual environment's interpreter (the platform's
    own, say, when its ``bin`` is on ``PATH``) is never taken unless named by the
    override: a function started with it would import that environment's packages.
    """
    if runtime not in PYTHON_RUNTIMES:
        return None
    env = os.environ if environ is None else environ
    accepts = usable or (lambda _: True)
    version = runtime.removeprefix("python")
    override = env.get(f"KUBELAMBDA_PYTHON_{version.replace('.', '_')}")
    if override:
        return override if os.access(override, os.X_OK) and accepts(override) else None
    for candidate in _candidates(version, env):
        if not _in_virtual_environment(candidate) and accepts(candidate):
            return candidate
    return None


def _candidates(version: str, environ: Mapping[str, str]) -> Iterator[str]:
    """The interpreter the platform runs on if it is that version, the one on ``PATH``,
    then the usual places, in that order."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        # The one the platform's venv was made from (gone, if the venv has copies).
        base = getattr(sys, "_base_executable", sys.executable)
        if os.access(base, os.X_OK):
            yield base
    found = shutil.which(f"python{version}", path=environ.get("PATH"))
    # pyenv puts shims on PATH for every version, which fail for the inactive ones.
    if found and "/shims/" not in found:
        yield found
    for root in _SEARCH_ROOTS:
        if root.name == "versions":
            try:
                paths = sorted(root.glob(f"{version}.*/bin/python{version}"), reverse=True)
            except PermissionError:
                continue  # another user's pyenv (root's, under /root)
        else:
            paths = [root / f"python{version}"]
        for path in paths:
            if path.is_file() and os.access(path, os.X_OK):
                yield str(path)


def _in_virtual_environment(python: str) -> bool:
    """Whether ``python`` is a venv's interpreter (``<venv>/bin/python``), by the
    ``pyvenv.cfg`` that makes it one."""
    return (Path(python).parent.parent / "pyvenv.cfg").is_file()


def available_runtimes(
    environ: Mapping[str, str] | None = None, *, usable: Callable[[str], bool] | None = None
) -> tuple[str, ...]:
    """Every runtime this host can run: the python ones it has an interpreter for (that
    ``usable`` accepts, see ``find_python``), and the ``provided`` ones."""
    pythons = tuple(
        r for r in PYTHON_RUNTIMES if find_python(r, environ, usable=usable) is not None
    )
    return pythons + PROVIDED_RUNTIMES
