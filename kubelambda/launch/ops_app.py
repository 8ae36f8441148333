"""The small HTTP app of the in-cluster controller and dispatcher: probes, metrics and
(on the controller) the scale-signal endpoint.

Built by ``cluster.run_controller`` and ``cluster.run_dispatcher``. ``/healthz`` answers
while the process serves (the liveness probe); ``/readyz`` answers 200 only while
``ready()`` holds (on the controller: while it leads, so that the controller Service
sends scale signals to the leader alone); ``/metrics`` is Prometheus' exposition.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kubelambda.signals import wire
from kubelambda.signals.receiver import SignalReceiver

__all__ = ["ops_app"]

# A batch names each target once: far below this even for thousands of functions.
_MAX_BATCH_BYTES = 4 * 1024 * 1024


def ops_app(
    *,
    registry: CollectorRegistry,
    ready: Callable[[], bool],
    signals: Callable[[], SignalReceiver | None] | None = None,
    instance_key: bytes | None = None,
) -> Starlette:
    """``signals`` returns the receiver while this process leads (``None`` otherwise);
    batches must carry the token derived from ``instance_key``."""

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        if ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "standby"}, status_code=503)

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if signals is not None and instance_key is not None:
        expected = f"Bearer {wire.token(instance_key)}"
        receiver_of = signals

        async def receive(request: Request) -> Response:
            presented = request.headers.get("authorization", "")
            if not hmac.compare_digest(presented.encode(), expected.encode()):
                return _error(403, "AccessDeniedException", "bad or missing signal token")
            receiver = receiver_of()
            if receiver is None:
                return _error(503, "ServiceException", "this controller replica is not leading")
            if int(request.headers.get("content-length") or 0) > _MAX_BATCH_BYTES:
                return _error(413, "RequestTooLargeException", "signal batch too large")
            try:
                batch = wire.decode(await request.body())
            except ValueError as exc:
                return _error(400, "InvalidRequestContentException", str(exc))
            receiver.accept(batch, now=time.monotonic())
            return Response(status_code=204)

        routes.append(Route(wire.PATH, receive, methods=["POST"]))
    return Starlette(routes=routes)


def _error(status: int, kind: str, message: str) -> Response:
    return JSONResponse(
        {"Type": "User", "message": message}, status_code=status, headers={"x-amzn-ErrorType": kind}
    )
