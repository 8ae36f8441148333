"""The ``kubelambda`` command: ``up`` runs the platform, ``env`` prints how to reach it.

kubelambda up [--example] [--host ADDR] [--port N] [--home DIR] [--kafka-bootstrap HOST:PORT]
kubelambda up --kubernetes [--namespace NS]... [--host ADDR]   # functions as pods, $KUBECONFIG
kubelambda gateway|controller|dispatcher   # one role in a cluster (the Helm chart's pods)
eval "$(kubelambda env)"     # AWS_ENDPOINT_URL_LAMBDA, AWS keys, region, KUBELAMBDA_API_KEY
eval "$(kubelambda env --kubernetes -n NS)"   # the same for a Helm release in namespace NS
kubelambda dlq list|redrive FUNCTION [--namespace NS] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import sys
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from kubelambda import credentials, errors
from kubelambda.launch.settings import PlatformSettings
from kubelambda.models import DEFAULT_NAMESPACE, FunctionKey

__all__ = ["main"]

ROLES = {
    "gateway": "gateway (Lambda and management APIs)",
    "controller": "controller (leader-elected autoscaler and pod backend)",
    "dispatcher": "dispatcher of Event invocations from Kafka",
}


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        settings = PlatformSettings.from_environ(
            env,
            home=args.home,
            port=getattr(args, "port", None),
            host=getattr(args, "host", None),
            kubernetes=(getattr(args, "kubernetes", None) and args.command == "up") or None,
            namespaces=tuple(getattr(args, "namespace", None) or ()) or None,
            kafka_bootstrap=args.kafka_bootstrap,
        )
    except ValidationError as exc:
        print(f"kubelambda: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    for line in PlatformSettings.unknown_variables(env):
        print(f"kubelambda: warning: {line}", file=sys.stderr)
    if args.command == "up":
        return _up(settings, example=args.example)
    if args.command in ROLES:
        return _role(settings, args.command)
    if args.command == "dlq":
        return _dlq(settings, args)
    if args.kubernetes:
        return _cluster_env(settings, namespace=args.namespace, release=args.release)
    return _env(settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubelambda", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", help="state directory (default $KUBELAMBDA_HOME or ~/.kubelambda)"
    )
    parser.add_argument(
        "--kafka-bootstrap",
        help="queue async events on this Kafka cluster (default $KUBELAMBDA_KAFKA_BOOTSTRAP; "
        "unset: in SQLite under the home)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run the platform in the foreground")
    up.add_argument("--port", type=int, help="gateway port (default $KUBELAMBDA_PORT or 7070)")
    up.add_argument("--host", help="gateway address (default $KUBELAMBDA_HOST or 127.0.0.1)")
    up.add_argument(
        "--kubernetes",
        action="store_true",
        help="run functions as pods on the cluster in $KUBECONFIG (store: custom resources)",
    )
    up.add_argument(
        "--namespace",
        action="append",
        help="with --kubernetes: serve this namespace's functions (repeat; default all)",
    )
    up.add_argument("--example", action="store_true", help="deploy the example function 'hello'")
    for role, what in ROLES.items():
        commands.add_parser(role, help=f"in a cluster: run the {what} (settings from the env)")
    env = commands.add_parser("env", help="print export lines for the AWS CLI, boto3 and curl")
    env.add_argument(
        "--kubernetes",
        action="store_true",
        help="for a Helm release in the cluster of $KUBECONFIG (its Service and Secret)",
    )
    env.add_argument("-n", "--namespace", default="kubelambda", help="the release's namespace")
    env.add_argument("--release", help="the release's name, when the namespace has several")
    dlq = commands.add_parser("dlq", help="a function's dead letters (failed async events)")
    dlq.add_argument("action", choices=("list", "redrive"), help="show them, or re-enqueue them")
    dlq.add_argument("function", help="the function's name")
    dlq.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="its namespace")
    dlq.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _up(settings: PlatformSettings, *, example: bool) -> int:
    # The platform's imports are only paid by the commands that run it.
    from kubelambda.launch import embedded, kubernetes

    if settings.kubernetes:
        return _serve(settings, kubernetes.run(settings, deploy_example=example))
    return _serve(settings, embedded.run(settings, deploy_example=example))


def _role(settings: PlatformSettings, role: str) -> int:
    from kubelambda.launch import cluster

    runs = {
        "gateway": cluster.run_gateway,
        "controller": cluster.run_controller,
        "dispatcher": cluster.run_dispatcher,
    }
    return _serve(settings, runs[role](settings))


def _serve(settings: PlatformSettings, run: Coroutine[Any, Any, None]) -> int:
    from kubelambda.launch import open_files
    from kubelambda.launch.errors import PlatformStartError

    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    open_files.raise_open_file_limit()
    # A Ctrl-C before serving starts ends the start; once serving, run() handles signals.
    try:
        with contextlib.suppress(KeyboardInterrupt), _event_loop() as runner:
            runner.run(run)
    except PlatformStartError as exc:
        print(f"kubelambda: {exc}", file=sys.stderr)
        return 1
    return 0


def _event_loop() -> asyncio.Runner:
    """The platform's event loop: uvloop, which takes about a fifth less CPU per
    invocation on the gateway's path than asyncio's own (issue 11's measurements)."""
    import uvloop

    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def _dlq(settings: PlatformSettings, args: argparse.Namespace) -> int:
    from kubelambda.launch import dlq

    function = FunctionKey(args.namespace, args.function)
    try:
        return asyncio.run(
            dlq.run(settings, action=args.action, function=function, as_json=args.json)
        )
    except errors.LambdaError as exc:
        print(f"kubelambda: {exc.message}", file=sys.stderr)
        return 1


def _env(settings: PlatformSettings) -> int:
    if not settings.url_file.exists():
        print(
            f"kubelambda: no running platform under {settings.home} (start it: kubelambda up)",
            file=sys.stderr,
        )
        return 1
    keys = credentials.load(settings.home)
    values = {
        "AWS_ENDPOINT_URL_LAMBDA": settings.url_file.read_text().strip(),
        "AWS_ACCESS_KEY_ID": keys.access_key_id,
        "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
        "AWS_DEFAULT_REGION": settings.region,
        "KUBELAMBDA_API_KEY": keys.api_key,
    }
    _print_exports(values)
    return 0


def _cluster_env(settings: PlatformSettings, *, namespace: str, release: str | None) -> int:
    from kubelambda.kubernetes.connection import NoCluster, connected
    from kubelambda.kubernetes.installation import InstallationNotFound, find_installation
    from kubelambda.kubernetes.rest import ApiError

    async def find() -> Any:
        async with connected(settings.kubeconfig) as api:
            return await find_installation(api, namespace=namespace, release=release)

    try:
        installation = asyncio.run(find())
    except (InstallationNotFound, NoCluster) as exc:
        print(f"kubelambda: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"kubelambda: the cluster refused: {exc.status} {exc.message}", file=sys.stderr)
        return 1
    _print_exports(
        {
            "AWS_ENDPOINT_URL_LAMBDA": installation.endpoint,
            "AWS_ACCESS_KEY_ID": installation.keys.access_key_id,
            "AWS_SECRET_ACCESS_KEY": installation.keys.secret_access_key,
            "AWS_DEFAULT_REGION": installation.region,
            "KUBELAMBDA_API_KEY": installation.keys.api_key,
        }
    )
    return 0


def _print_exports(values: Mapping[str, str]) -> None:
    for name, value in values.items():
        print(f"export {name}={shlex.quote(value)}")
