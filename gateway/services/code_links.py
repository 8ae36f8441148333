"""Short-lived download links for a function's code (GetFunction's ``Code.Location``).

Like Lambda's presigned S3 URL, the link works without credentials for ten minutes:
``gateway.api.functions`` makes one with ``CodeLinks.path``, and the open route in
``gateway.api.code`` serves the zip only if ``CodeLinks.verify`` accepts the link.
The signing key is random per gateway process, so links never reveal or depend on a
user's secret, and a restart simply expires them.

In Kubernetes mode pods fetch their package from the same route with a bearer *code
token* (``kubelambda.instance_tokens``) instead of a link: it names one package, never
expires (a pod may start any time) and is derived from the platform's key, given here
as ``instance_key`` (``None`` where no instance fetches code, as in embedded mode).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from urllib.parse import urlencode

from kubelambda import instance_tokens

__all__ = ["CODE_PATH_PREFIX", "CodeLinks"]

CODE_PATH_PREFIX = "/kubelambda/code/"


class CodeLinks:
    def __init__(
        self,
        *,
        clock: Callable[[], float],
        ttl_seconds: int = 600,
        instance_key: bytes | None = None,
    ) -> None:
        self._key = secrets.token_bytes(32)
        self._clock = clock
        self._ttl = ttl_seconds
        self._instance_key = instance_key

    def path(self, code_sha256: str) -> str:
        """The path and query of a link to the zip with this ``CodeSha256`` (base64)."""
        sha256_hex = base64.b64decode(code_sha256).hex()
        expires = int(self._clock()) + self._ttl
        query = urlencode({"Expires": expires, "Signature": self._sign(sha256_hex, expires)})
        return f"{CODE_PATH_PREFIX}{sha256_hex}.zip?{query}"

    def verify(self, sha256_hex: str, *, expires: int, signature: str) -> bool:
        if expires < self._clock():
            return False
        return hmac.compare_digest(self._sign(sha256_hex, expires), signature)

    def verify_instance(self, sha256_hex: str, *, token: str) -> bool:
        """Whether ``token`` is the code token of this package (an instance fetching it)."""
        return self._instance_key is not None and instance_tokens.valid_code_token(
            self._instance_key, sha256_hex, token
        )

    def _sign(self, sha256_hex: str, expires: int) -> str:
        message = f"{sha256_hex}:{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
