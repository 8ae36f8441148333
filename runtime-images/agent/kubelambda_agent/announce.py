"""Tell the gateway this pod serves now (Kubernetes mode), instead of letting it wait.

``agent.run`` calls ``announce_in_background`` once the agent is ready, when its
configuration names an announcement URL (``config.Announcement``). The POST is made once,
in a thread, and may fail without harm: the gateway then learns of the pod from the
kubelet, a relist later. See ``protocol`` for the message and its proof.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.parse

from kubelambda_agent import protocol
from kubelambda_agent.config import Announcement

__all__ = ["announce", "announce_in_background"]

log = logging.getLogger(__name__)

_TIMEOUT_SECONDS = 2.0


def announce(announcement: Announcement, *, token: str) -> None:
    """POST the announcement; log (never raise) when it does not arrive."""
    parts = urllib.parse.urlsplit(announcement.url)
    body = json.dumps(
        {
            "namespace": announcement.namespace,
            "pod": announcement.pod,
            "ip": announcement.ip,
            "proof": protocol.announcement_proof(
                token, namespace=announcement.namespace, pod=announcement.pod, ip=announcement.ip
            ),
        }
    ).encode()
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname or "", parts.port, timeout=_TIMEOUT_SECONDS)
    try:
        connection.request(
            "POST", parts.path, body=body, headers={"Content-Type": "application/json"}
        )
        status = connection.getresponse().status
    except OSError as exc:
        log.warning("readiness not announced error=%s", exc)
        return
    finally:
        connection.close()
    if status != 202:
        log.warning("readiness not announced status=%d", status)


def announce_in_background(announcement: Announcement, *, token: str) -> threading.Thread:
    thread = threading.Thread(
        target=announce, args=(announcement,), kwargs={"token": token}, daemon=True
    )
    thread.start()
    return thread
