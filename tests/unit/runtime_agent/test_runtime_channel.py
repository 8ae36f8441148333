"""The agent's end of the python bootstrap's channel (kubelambda_agent.runtime_channel),
fed frames by hand, and the bootstrap's end on a real socket pair."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Sequence

from kubelambda_agent import config, runtime_api
from kubelambda_agent import python_bootstrap as bootstrap
from kubelambda_agent.runtime_channel import MAX_META_BYTES, ChannelProtocol

HEAD = struct.Struct(">cII")


def frame(kind: bytes, meta: bytes = b"", body: bytes = b"") -> bytes:
    return HEAD.pack(kind, len(meta), len(body)) + meta + body


class Target:
    """Records the Runtime API calls the channel makes (runtime_api.RuntimeApiTarget)."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.replies: list[runtime_api.Reply] = []

    def next_requested(self, responder: runtime_api.Reply) -> None:
        self.calls.append(("next",))
        self.replies.append(responder)

    def invocation_answered(
        self,
        request_id: str,
        body: bytes,
        *,
        is_error: bool,
        error_type: str | None,
        too_large: bool,
    ) -> runtime_api.Verdict:
        self.calls.append(("answered", request_id, body, is_error, error_type, too_large))
        return runtime_api.Verdict.ACCEPTED

    def init_failed(self, body: bytes, error_type: str | None) -> bool:
        self.calls.append(("init_failed", body, error_type))
        return True


class Transport:
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def writelines(self, chunks: Sequence[bytes]) -> None:
        self.written += b"".join(chunks)

    def close(self) -> None:
        self.closed = True


def channel(max_body: int = 1000) -> tuple[ChannelProtocol, Target, Transport]:
    target, transport = Target(), Transport()
    protocol = ChannelProtocol(target, max_body=max_body)
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, target, transport


def test_an_answer_and_the_next_poll_in_one_message_are_handled_in_order() -> None:
    protocol, target, _ = channel()

    protocol.data_received(frame(b"r", b"req-1", b'{"ok":1}') + frame(b"n"))

    assert target.calls == [("answered", "req-1", b'{"ok":1}', False, None, False), ("next",)]


def test_frames_cut_anywhere_are_put_back_together() -> None:
    protocol, target, _ = channel()
    data = frame(b"e", b"req-2\nValueError", b'{"errorMessage":"x"}') + frame(b"n")

    for index in range(len(data)):
        protocol.data_received(data[index : index + 1])

    assert target.calls == [
        ("answered", "req-2", b'{"errorMessage":"x"}', True, "ValueError", False),
        ("next",),
    ]


def test_a_body_over_the_limit_is_dropped_as_it_arrives_and_reported_too_large() -> None:
    protocol, target, _ = channel(max_body=10)
    data = frame(b"r", b"req-3", b"x" * 5000) + frame(b"n")

    protocol.data_received(data[:100])
    protocol.data_received(data[100:3000])
    protocol.data_received(data[3000:])

    assert target.calls == [("answered", "req-3", b"", False, None, True), ("next",)]


def test_an_unknown_kind_or_an_oversized_meta_closes_the_channel() -> None:
    garbage, target, garbage_transport = channel()
    garbage.data_received(b"GET / HTTP/1.1\r\n\r\n")
    huge, _, huge_transport = channel()
    huge.data_received(HEAD.pack(b"r", MAX_META_BYTES + 1, 0))

    assert (garbage_transport.closed, huge_transport.closed, target.calls) == (True, True, [])


def test_the_reply_to_next_carries_the_invocation_headers_and_event() -> None:
    protocol, target, transport = channel()
    protocol.data_received(frame(b"n"))

    target.replies[0].respond(200, b'{"a":1}', [("Lambda-Runtime-Aws-Request-Id", "req-4")])

    assert transport.written == frame(b"v", b"lambda-runtime-aws-request-id: req-4\n", b'{"a":1}')


def test_an_init_error_is_recorded_before_it_is_acknowledged() -> None:
    protocol, target, transport = channel()

    protocol.data_received(frame(b"i", b"Runtime.ImportModuleError", b"{}"))

    assert target.calls == [("init_failed", b"{}", "Runtime.ImportModuleError")]
    assert transport.written == frame(b"a")


def test_the_bootstrap_spells_the_channel_variable_as_the_agent_does() -> None:
    assert bootstrap.CHANNEL_FD_VARIABLE == config.CHANNEL_FD_VARIABLE


def test_the_bootstrap_sends_its_answer_with_the_next_poll_and_reads_a_cut_frame() -> None:
    agent_end, runtime_end = socket.socketpair()
    seen: list[bytes] = []
    invocation = frame(b"v", b"lambda-runtime-aws-request-id: req-5\n", b'{"n":5}')

    def agent() -> None:
        seen.append(agent_end.recv(65536))
        agent_end.sendall(invocation[:7])  # a head cut in two ...
        agent_end.sendall(invocation[7:])  # ... then the rest

    thread = threading.Thread(target=agent)
    thread.start()
    client = bootstrap.RuntimeClient(runtime_end.detach())
    body, headers = client.next((b"r", "req-4", b'"done"'))
    thread.join()
    client.close()
    agent_end.close()

    assert (body, headers) == (b'{"n":5}', {"lambda-runtime-aws-request-id": "req-5"})
    assert seen == [frame(b"r", b"req-4", b'"done"') + frame(b"n")]
