"""A pod's agent announcing itself to a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from kubelambda_agent import announce, protocol
from kubelambda_agent.config import Announcement

TOKEN = "t" * 40


class Receiver(http.server.ThreadingHTTPServer):
    def __init__(self, status: int) -> None:
        self.status = status
        self.received: list[tuple[str, dict[str, str]]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.received.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{protocol.ANNOUNCE_PATH}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(202)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_announcement_names_the_pod_and_proves_the_token(receiver: Receiver) -> None:
    announcement = Announcement(url=receiver.url, namespace="ns", pod="p-1", ip="10.244.0.7")
    announce.announce_in_background(announcement, token=TOKEN).join(5)
    ((path, body),) = receiver.received
    assert path == protocol.ANNOUNCE_PATH
    assert body == {
        "namespace": "ns",
        "pod": "p-1",
        "ip": "10.244.0.7",
        "proof": protocol.announcement_proof(TOKEN, namespace="ns", pod="p-1", ip="10.244.0.7"),
    }
    assert TOKEN not in json.dumps(body)


def test_the_proof_depends_on_every_field_and_the_token() -> None:
    proofs = {
        protocol.announcement_proof(token, namespace=ns, pod=pod, ip=ip)
        for token, ns, pod, ip in [
            (TOKEN, "ns", "p", "1"),
            ("u" * 40, "ns", "p", "1"),
            (TOKEN, "ns2", "p", "1"),
            (TOKEN, "ns", "p2", "1"),
            (TOKEN, "ns", "p", "2"),
        ]
    }
    assert len(proofs) == 5


def test_an_unreachable_gateway_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    announcement = Announcement(
        url="http://127.0.0.1:9/kubelambda/instances/ready", namespace="n", pod="p", ip="1"
    )
    announce.announce(announcement, token=TOKEN)
    assert "readiness not announced" in caplog.text
