"""Turns a request's credentials into a ``Principal``, or into the 403 AWS would send.

``gateway.app`` calls ``Authenticator.authenticate`` once per request (management and
invoke alike) before anything else runs. Two schemes: AWS SigV4 (boto3, the AWS CLI)
and ``Authorization: Bearer <api key>`` (curl, scripts). Failures are logged with the
reason and the access key id (never a secret or a signature).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gateway.auth import sigv4
from gateway.auth.request import RawRequest
from kubelambda import errors
from kubelambda.credentials import Keyring, Principal

__all__ = ["Authenticator"]

log = logging.getLogger(__name__)

_BEARER = "bearer "


class Authenticator:
    """Checks credentials against a ``Keyring``; the clock is injected for skew checks."""

    def __init__(
        self,
        keyring: Keyring,
        *,
        max_skew: timedelta = timedelta(minutes=15),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._keyring = keyring
        self._max_skew = max_skew
        self._clock = clock

    def authenticate(self, request: RawRequest) -> Principal:
        header = request.header("authorization")
        try:
            if header is None:
                raise errors.MissingAuthenticationToken("Missing Authentication Token")
            if header[: len(_BEARER)].lower() == _BEARER:
                return self._bearer(header[len(_BEARER) :].strip())
            credentials = sigv4.verify(
                request, keyring=self._keyring, now=self._clock(), max_skew=self._max_skew
            )
        except errors.AccessDenied as exc:
            log.info(
                "authentication failed code=%s method=%s path=%s",
                exc.code,
                request.method,
                request.raw_path.decode("latin-1"),
            )
            raise
        return credentials.principal

    def _bearer(self, api_key: str) -> Principal:
        credentials = self._keyring.by_api_key(api_key)
        if credentials is None:
            raise errors.UnrecognizedClient(
                "The security token included in the request is invalid."
            )
        return credentials.principal
