"""kubelambda.launch.coalesced_writes: the writes of one loop step go out as one."""

from __future__ import annotations

import asyncio

from kubelambda.launch.coalesced_writes import CoalescedWrites


class Transport:
    """Records writes and whether it was closed after them."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def write(self, data: bytes) -> None:
        self.events.append(data)

    def close(self) -> None:
        self.events.append("closed")

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


async def test_a_head_and_a_body_written_in_one_step_are_sent_once() -> None:
    transport = Transport()
    writes = CoalescedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]

    writes.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    writes.write(b"{}")
    pending = writes.get_write_buffer_size()
    before = list(transport.events)
    await asyncio.sleep(0)

    assert (before, pending) == ([], 40)
    assert transport.events == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


async def test_closing_sends_what_is_pending_first() -> None:
    transport = Transport()
    writes = CoalescedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]

    writes.write(b"bye")
    writes.close()
    await asyncio.sleep(0)

    assert transport.events == [b"bye", "closed"]


async def test_anything_else_reaches_the_real_transport() -> None:
    writes = CoalescedWrites(Transport(), asyncio.get_running_loop())  # type: ignore[arg-type]

    assert writes.is_closing() is False
