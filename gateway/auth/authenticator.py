"""Turns a request's credentials into a ``Principal``, or into the 403 AWS would send.

``gateway.app`` calls ``Authenticator.screen`` once per request (management and invoke
alike) before anything else runs, with the headers only, and ``confirm`` once the body is
read (a SigV4 signature covers the body's hash). Two schemes: AWS SigV4 (boto3, the AWS CLI)
and ``Authorization: Bearer <api key>`` (curl, scripts). Failures are logged with the
reason and the access key id (never a secret or a signature).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.auth import sigv4
from gateway.auth.request import RawRequest
from kubelambda import errors
from kubelambda.credentials import Keyring, Principal

__all__ = ["Authenticator", "Screened"]

log = logging.getLogger(__name__)

_BEARER = "bearer "


@dataclass(frozen=True, slots=True)
class Screened:
    """A request whose headers passed: the caller they name, and (SigV4) the signature
    still to check once the body is read."""

    principal: Principal
    claim: sigv4.Claim | None = None


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
        return self.confirm(self.screen(request), request)

    def screen(self, request: RawRequest) -> Screened:
        """What the headers alone decide (``request.body`` is not looked at): missing,
        malformed or unknown credentials, a bad or skewed date, a bearer key (whole)."""
        with self._logged(request):
            header = request.header("authorization")
            if header is None:
                raise errors.MissingAuthenticationToken("Missing Authentication Token")
            if header[: len(_BEARER)].lower() == _BEARER:
                return Screened(self._bearer(header[len(_BEARER) :].strip()))
            claim = sigv4.screen(
                request, keyring=self._keyring, now=self._clock(), max_skew=self._max_skew
            )
            return Screened(claim.credentials.principal, claim)

    def confirm(self, screened: Screened, request: RawRequest) -> Principal:
        """The caller, once ``request`` (with its body) carries the signature it claims."""
        if screened.claim is None:
            return screened.principal
        with self._logged(request):
            return sigv4.check_signature(request, screened.claim).principal

    @contextlib.contextmanager
    def _logged(self, request: RawRequest) -> Iterator[None]:
        try:
            yield
        except errors.AccessDenied as exc:
            log.info(
                "authentication failed code=%s method=%s path=%s",
                exc.code,
                request.method,
                request.raw_path.decode("latin-1"),
            )
            raise

    def _bearer(self, api_key: str) -> Principal:
        credentials = self._keyring.by_api_key(api_key)
        if credentials is None:
            raise errors.UnrecognizedClient(
                "The security token included in the request is invalid."
            )
        return credentials.principal
