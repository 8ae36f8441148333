"""The ``kubelambda`` command: ``up`` runs the platform, ``env`` prints how to reach it.

kubelambda up [--example] [--host ADDR] [--port N] [--home DIR] [--kafka-bootstrap HOST:PORT]
kubelambda up --kubernetes [--namespace NS]... [--host ADDR]   # functions as pods, $KUBECONFIG
eval "$(kubelambda env)"     # AWS_ENDPOINT_URL_LAMBDA, AWS keys, region, KUBELAMBDA_API_KEY
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
from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from kubelambda import credentials, errors
from kubelambda.launch.settings import PlatformSettings
from kubelambda.models import DEFAULT_NAMESPACE, FunctionKey

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        settings = PlatformSettings.from_environ(
            env,
            home=args.home,
            port=getattr(args, "port", None),
            host=getattr(args, "host", None),
            kubernetes=getattr(args, "kubernetes", None) or None,
            namespaces=tuple(getattr(args, "namespace", None) or ()) or None,
            kafka_bootstrap=args.kafka_bootstrap,
        )
    except ValidationError as exc:
        print(f"kubelambda: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    if args.command == "up":
        return _up(settings, example=args.example)
    if args.command == "dlq":
        return _dlq(settings, args)
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
    commands.add_parser("env", help="print export lines for the AWS CLI, boto3 and curl")
    dlq = commands.add_parser("dlq", help="a function's dead letters (failed async events)")
    dlq.add_argument("action", choices=("list", "redrive"), help="show them, or re-enqueue them")
    dlq.add_argument("function", help="the function's name")
    dlq.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="its namespace")
    dlq.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _up(settings: PlatformSettings, *, example: bool) -> int:
    # The platform's imports are only paid by `up`.
    from kubelambda.launch import embedded, kubernetes
    from kubelambda.launch.errors import PlatformStartError

    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # A Ctrl-C before serving starts ends the start; once serving, run() handles signals.
    try:
        with contextlib.suppress(KeyboardInterrupt):
            if settings.kubernetes:
                asyncio.run(kubernetes.run(settings, deploy_example=example))
            else:
                asyncio.run(embedded.run(settings, deploy_example=example))
    except PlatformStartError as exc:
        print(f"kubelambda: {exc}", file=sys.stderr)
        return 1
    return 0


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
    for name, value in values.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0
