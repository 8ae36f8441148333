"""AWS Signature Version 4 verification for requests signed by boto3, the AWS CLI and SDKs.

Called by ``gateway.auth.authenticator`` for ``Authorization: AWS4-HMAC-SHA256 ...``.
The expected signature is recomputed from what was on the wire: the raw path (an
ARN's ``%3A`` is signed as ``%253A``, since the canonical URI encodes the wire path
once more), the raw query, only the headers the client listed as signed, and our own
SHA-256 of the body (a client-supplied body hash is never trusted). Every ``x-amz-*``
header present must be among the signed ones, as AWS requires. The timestamp must
be within ``max_skew`` of ``now``, the scope's service must be ``lambda``; any region is
accepted. Signatures are compared with ``hmac.compare_digest``. ``screen`` checks all
that the headers alone can tell, before the body is read; ``check_signature`` the rest.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from gateway.auth.request import RawRequest
from kubelambda import errors
from kubelambda.credentials import Credentials, Keyring

__all__ = [
    "ALGORITHM",
    "Claim",
    "canonical_request",
    "check_signature",
    "parse_authorization",
    "screen",
    "sign",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "lambda"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_AMZ_DATE_FORM = re.compile(r"^\d{8}T\d{6}Z$")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parsed ``Authorization`` header of a SigV4 request."""

    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(header: str) -> Authorization:
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        raise errors.InvalidSignature(f"Unsupported authorization algorithm: {algorithm}")
    fields = {}
    for part in rest.split(","):
        key, _, value = part.strip().partition("=")
        fields[key] = value
    for required in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(required):
            raise errors.InvalidSignature(
                f"Authorization header requires '{required}' parameter. "
                f"Authorization={ALGORITHM} ..."
            )
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        raise errors.InvalidSignature(
            "Credential should be scoped to a valid region, not the given credential scope."
        )
    return Authorization(
        access_key_id=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        terminator=scope[4],
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"],
    )


@dataclass(frozen=True, slots=True)
class Claim:
    """A SigV4 request whose headers passed ``screen``: the key set it claims, and what its
    signature is checked with once the body is read."""

    authorization: Authorization
    credentials: Credentials
    amz_date: str


def verify(
    request: RawRequest, *, keyring: Keyring, now: datetime, max_skew: timedelta
) -> Credentials:
    """The key set that signed ``request``, or the 403 a client would get from AWS."""
    return check_signature(request, screen(request, keyring=keyring, now=now, max_skew=max_skew))


def screen(request: RawRequest, *, keyring: Keyring, now: datetime, max_skew: timedelta) -> Claim:
    """Everything that can be checked from the headers alone (the body is not looked at):
    the Authorization header's form, a known access key, the date and its skew, the
    scope, and that the headers that must be signed are."""
    auth = parse_authorization(request.header("authorization") or "")
    credentials = keyring.by_access_key(auth.access_key_id)
    if credentials is None:
        raise errors.UnrecognizedClient("The security token included in the request is invalid.")
    amz_date = request.header("x-amz-date")
    if amz_date is None:
        raise errors.InvalidSignature(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    signed_at = _parse_amz_date(amz_date)
    _check_scope(auth, amz_date)
    _check_skew(signed_at, now=now, max_skew=max_skew)
    missing = [name for name in auth.signed_headers if not request.header_values(name)]
    if "host" not in auth.signed_headers or missing:
        raise errors.InvalidSignature(_MISMATCH)
    _check_amz_headers_signed(request, auth)
    return Claim(authorization=auth, credentials=credentials, amz_date=amz_date)


def check_signature(request: RawRequest, claim: Claim) -> Credentials:
    """The claimed key set if ``request`` (now with its body) carries its signature."""
    auth = claim.authorization
    expected = sign(
        canonical_request(request, auth.signed_headers),
        secret_access_key=claim.credentials.secret_access_key,
        amz_date=claim.amz_date,
        region=auth.region,
        service=auth.service,
    )
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise errors.InvalidSignature(_MISMATCH)
    return claim.credentials


def _check_amz_headers_signed(request: RawRequest, auth: Authorization) -> None:
    # x-amz-* headers change what a request does (X-Amz-Log-Type, X-Amz-Invocation-Type):
    # AWS requires every one of them to be signed, so one added in transit cannot count.
    signed = {name.lower() for name in auth.signed_headers}
    unsigned = sorted(
        {
            name.decode("latin-1")
            for name, _ in request.headers
            if name.startswith(b"x-amz-") and name.decode("latin-1") not in signed
        }
    )
    if unsigned:
        raise errors.InvalidSignature(
            f"There were headers present in the request which were not signed: "
            f"{', '.join(unsigned)}"
        )


def canonical_request(request: RawRequest, signed_headers: tuple[str, ...]) -> str:
    names = sorted({name.lower() for name in signed_headers})
    header_lines = "".join(
        f"{name}:{','.join(' '.join(v.split()) for v in request.header_values(name))}\n"
        for name in names
    )
    return "\n".join(
        (
            request.method.upper(),
            _canonical_uri(request.raw_path.decode("latin-1")),
            _canonical_query(request.query_string.decode("latin-1")),
            header_lines,
            ";".join(names),
            hashlib.sha256(request.body).hexdigest(),
        )
    )


def sign(
    canonical: str, *, secret_access_key: str, amz_date: str, region: str, service: str
) -> str:
    """The hex signature of a canonical request (the SigV4 key derivation chain)."""
    day = amz_date[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"
    key = _signing_key(secret_access_key, day, region, service)
    return hmac.digest(key, string_to_sign.encode(), "sha256").hex()


@functools.lru_cache(maxsize=256)
def _signing_key(secret_access_key: str, day: str, region: str, service: str) -> bytes:
    # The derived key changes once a day per region: SDKs cache it too, and it saves four
    # of the five HMACs on the invoke path.
    key = f"AWS4{secret_access_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def _canonical_uri(raw_path: str) -> str:
    # As botocore: drop dot segments and repeated slashes, then encode the wire form again.
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    path = "/" + "/".join(segments)
    if raw_path.endswith("/") and segments:
        path += "/"
    return quote(path, safe="/~")


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        key, _, value = item.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _parse_amz_date(value: str) -> datetime:
    # By hand: strptime costs more than the rest of the verification together.
    if not _AMZ_DATE_FORM.match(value):
        raise errors.InvalidSignature(f"Invalid X-Amz-Date: {value}")
    try:
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise errors.InvalidSignature(f"Invalid X-Amz-Date: {value}") from exc


def _check_scope(auth: Authorization, amz_date: str) -> None:
    if auth.service != SERVICE:
        raise errors.InvalidSignature(
            f"Credential should be scoped to correct service: '{SERVICE}'."
        )
    if auth.terminator != "aws4_request":
        raise errors.InvalidSignature(
            "Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{auth.terminator}'."
        )
    if auth.date != amz_date[:8]:
        raise errors.InvalidSignature(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{auth.date}' != '{amz_date[:8]}', from '{amz_date}'."
        )


def _check_skew(signed_at: datetime, *, now: datetime, max_skew: timedelta) -> None:
    if now - max_skew <= signed_at <= now + max_skew:
        return
    minutes = int(max_skew.total_seconds() // 60)
    stamp, now_stamp = signed_at.strftime(_AMZ_DATE), now.strftime(_AMZ_DATE)
    if signed_at < now:
        raise errors.InvalidSignature(
            f"Signature expired: {stamp} is now earlier than "
            f"{(now - max_skew).strftime(_AMZ_DATE)} ({now_stamp} - {minutes} min.)"
        )
    raise errors.InvalidSignature(
        f"Signature not yet current: {stamp} is still later than "
        f"{(now + max_skew).strftime(_AMZ_DATE)} ({now_stamp} + {minutes} min.)"
    )
