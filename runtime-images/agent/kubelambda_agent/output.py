"""Splitting a runtime's output stream into whole lines.

``slot`` feeds it whatever each read of the runtime's stdout/stderr pipe returned and gets
back the complete lines, so the agent's own START/END/REPORT lines never land in the
middle of a half-written runtime line. At the end of an invocation ``flush`` returns the
unterminated rest, so a final ``print(..., end="")`` still belongs to that invocation.
"""

from __future__ import annotations

__all__ = ["LineSplitter"]

# A runtime that writes megabytes without a newline still gets its output forwarded.
MAX_LINE_BYTES = 256 * 1024


class LineSplitter:
    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, data: bytes) -> bytes:
        """The complete lines (each ending in a newline) that ``data`` finishes."""
        data = self._partial + data
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) <= MAX_LINE_BYTES:
            self._partial = data
            return b""
        if end == 0:
            self._partial = b""
            return data + b"\n"
        self._partial = data[end:]
        return data[:end]

    def flush(self) -> bytes:
        """The unterminated rest, as a line of its own; empty when there is none."""
        rest, self._partial = self._partial, b""
        return rest + b"\n" if rest else b""
