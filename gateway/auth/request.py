"""The parts of an HTTP request that authentication looks at, as they came off the wire.

Built by ``gateway.app`` from the ASGI scope (``raw_path``, ``query_string``, the raw
header list), or from the request line and headers on the direct invoke path, and the body
it read; read by ``gateway.auth.sigv4`` and the authenticator.
Once a request is authenticated, ``gateway.app`` hands its body and caller to the inner
apps in the scope, under ``BODY_KEY`` and ``PRINCIPAL_KEY``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BODY_KEY", "PRINCIPAL_KEY", "RawRequest"]

BODY_KEY = "kubelambda.body"
PRINCIPAL_KEY = "kubelambda.principal"


@dataclass(frozen=True, slots=True)
class RawRequest:
    """Method, undecoded path and query, ASGI headers (lower-case names) and body."""

    method: str
    raw_path: bytes
    query_string: bytes
    headers: Sequence[tuple[bytes, bytes]]
    body: bytes

    def with_body(self, body: bytes) -> RawRequest:
        """This request with ``body`` (made directly: ``dataclasses.replace`` costs twice
        as much, on every invoke)."""
        return RawRequest(self.method, self.raw_path, self.query_string, self.headers, body)

    def header(self, name: str) -> str | None:
        """The first value of a header, by lower-case name."""
        wanted = name.encode()
        for key, value in self.headers:
            if key == wanted:
                return value.decode("latin-1")
        return None

    def header_values(self, name: str) -> list[str]:
        wanted = name.encode()
        return [value.decode("latin-1") for key, value in self.headers if key == wanted]
