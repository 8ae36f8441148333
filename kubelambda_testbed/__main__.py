"""`python -m kubelambda_testbed up|env|down [--only kafka,prometheus,kubernetes]`, and
`python -m kubelambda_testbed images` (`make images`).

Called by the Makefile (`make cluster-up`, `make -s cluster-env`, `make cluster-down`,
`make test`) and by developers. `up` starts what is not running yet (installing or building what
is missing into the cache), `env` prints the `export` lines that point clients at it, `down`
stops everything and leaves no process behind. Progress goes to stderr as key=value log lines;
stdout carries only the export lines, so `eval "$(python -m kubelambda_testbed env)"` is safe.

`images` builds the node's container images (the function runtime image of this checkout's
agent among them) and loads those the running node lacks, without restarting anything; `up`
does the same on a running cluster.

Kubernetes is `kubelambda_testbed.k8s`, built separately; when it is requested but absent, the
command fails and says so.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, cast

import kubelambda_testbed
from kubelambda_testbed import process

log = logging.getLogger("kubelambda_testbed")

# In start order; `down` goes in reverse.
COMPONENTS = {
    "kafka": "kubelambda_testbed.kafka",
    "prometheus": "kubelambda_testbed.prometheus",
    "kubernetes": "kubelambda_testbed.k8s",
}
BIN_DIR_KEY = "TESTINFRA_BIN_DIR"


class Component(Protocol):
    """What every infrastructure module offers."""

    def up(self, state_dir: Path, cache_dir: Path) -> dict[str, str]: ...
    def env(self, state_dir: Path, cache_dir: Path) -> dict[str, str]: ...
    def down(self, state_dir: Path) -> None: ...
    def is_up(self, state_dir: Path) -> bool: ...


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # Readiness polling makes one request per try; their access lines would drown the progress.
    for noisy in ("httpx", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    state_dir = kubelambda_testbed.state_dir(os.environ)
    cache_dir = kubelambda_testbed.cache_dir(os.environ)
    names: list[str] = args.only
    if args.command == "down":
        return _down(list(reversed(names)), state_dir)
    if args.command == "images":
        return _images(state_dir, cache_dir)
    environment: dict[str, str] = {}
    for name in names:
        try:
            module = _load(name)
            started = time.monotonic()
            if args.command == "up":
                log.info("event=up component=%s", name)
                module.up(state_dir, cache_dir)
                log.info(
                    "event=up-done component=%s seconds=%.1f", name, time.monotonic() - started
                )
            else:
                environment.update(module.env(state_dir, cache_dir))
        except process.InfraError as exc:
            log.error("event=failed command=%s component=%s error=%s", args.command, name, exc)
            return 1
    if args.command == "env":
        sys.stdout.write(_exports(environment, state_dir))
    return 0


def _down(names: list[str], state_dir: Path) -> int:
    # Stop everything that can be stopped, even when one part fails, then report the failure.
    status = 0
    for name in names:
        try:
            _load(name).down(state_dir)
            log.info("event=down component=%s", name)
        except process.InfraError as exc:
            log.error("event=failed command=down component=%s error=%s", name, exc)
            status = 1
    return status


def _images(state_dir: Path, cache_dir: Path) -> int:
    try:
        # Imported here, as `_load` does: the Kubernetes part is optional in a checkout.
        from kubelambda_testbed import k8s

        k8s.load_images(state_dir, cache_dir)
    except process.InfraError as exc:
        log.error("event=failed command=images error=%s", exc)
        return 1
    return 0


def _load(name: str) -> Component:
    module_name = COMPONENTS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise process.InfraError(
            f"{name} was requested but {module_name} does not exist in this checkout; "
            f"use --only with a subset of the others"
        ) from exc
    return cast(Component, module)


def _exports(environment: dict[str, str], state_dir: Path) -> str:
    """Shell export lines; the tools' directory (kubectl, helm) goes in front of PATH."""
    lines = [f"export {kubelambda_testbed.STATE_ENV}={shlex.quote(str(state_dir))}"]
    bin_dir = environment.pop(BIN_DIR_KEY, None)
    lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(environment.items())]
    if bin_dir:
        lines.append(f'export PATH={shlex.quote(bin_dir)}:"$PATH"')
    return "".join(f"{line}\n" for line in lines)


def _components(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = sorted(set(names) - set(COMPONENTS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(COMPONENTS)} (got {value!r})")
    # Keep the start order whatever order they were given in.
    return [n for n in COMPONENTS if n in names]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kubelambda_testbed",
        description="Start, describe or stop the test infrastructure.",
    )
    parser.add_argument("command", choices=["up", "env", "down", "images"])
    parser.add_argument(
        "--only",
        type=_components,
        default=list(COMPONENTS),
        metavar="PARTS",
        help=f"comma-separated subset of {','.join(COMPONENTS)} (default: all)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
