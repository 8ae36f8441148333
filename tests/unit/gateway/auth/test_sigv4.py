"""SigV4 verification against requests signed by botocore itself (the client we serve)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import botocore.auth
import botocore.credentials
import pytest
from botocore.awsrequest import AWSRequest

from gateway.auth import Authenticator, RawRequest
from gateway.auth.sigv4 import parse_authorization
from kubelambda import errors
from kubelambda.credentials import Credentials, Keyring

KEYS = Credentials(access_key_id="AKIATESTTESTTEST0001", secret_access_key="s" * 40, api_key="k")
SIGNED_AT = datetime(2026, 1, 2, 3, 4, 5)
NOW = SIGNED_AT.replace(tzinfo=UTC)
HOST = "127.0.0.1:7070"
ARN_PATH = (
    "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af/invocations"
)


def signed(
    monkeypatch: pytest.MonkeyPatch,
    *,
    method: str = "POST",
    path: str = "/2015-03-31/functions/f/invocations",
    query: str = "",
    body: bytes = b'{"x": 1}',
    secret: str = KEYS.secret_access_key,
    region: str = "eu-west-1",
    service: str = "lambda",
) -> RawRequest:
    """A request as boto3 would put it on the wire, signed at ``SIGNED_AT``."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: SIGNED_AT)
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers={"Host": HOST})
    credentials = botocore.credentials.Credentials(KEYS.access_key_id, secret)
    botocore.auth.SigV4Auth(credentials, service, region).add_auth(request)
    prepared = request.prepare()
    wire = urlsplit(prepared.url)
    headers = [(k.lower().encode(), v.encode()) for k, v in prepared.headers.items()]
    body_sent = prepared.body or b""
    return RawRequest(method, wire.path.encode(), wire.query.encode(), headers, body_sent)


def authenticate(request: RawRequest, *, now: datetime = NOW) -> Credentials | str:
    authenticator = Authenticator(Keyring([KEYS]), clock=lambda: now)
    try:
        principal = authenticator.authenticate(request)
    except errors.AccessDenied as exc:
        return exc.code
    assert principal == KEYS.principal
    return KEYS


def with_body(body: bytes) -> Callable[[RawRequest], RawRequest]:
    return lambda r: RawRequest(r.method, r.raw_path, r.query_string, r.headers, body)


def with_path(path: bytes) -> Callable[[RawRequest], RawRequest]:
    return lambda r: RawRequest(r.method, path, r.query_string, r.headers, r.body)


def with_query(query: bytes) -> Callable[[RawRequest], RawRequest]:
    return lambda r: RawRequest(r.method, r.raw_path, query, r.headers, r.body)


def with_header(name: bytes, value: bytes) -> Callable[[RawRequest], RawRequest]:
    def change(r: RawRequest) -> RawRequest:
        headers = [(k, v) for k, v in r.headers if k != name] + [(name, value)]
        return RawRequest(r.method, r.raw_path, r.query_string, headers, r.body)

    return change


def unchanged(r: RawRequest) -> RawRequest:
    return r


@pytest.mark.parametrize(
    ("signing", "change", "expected"),
    [
        ({}, unchanged, KEYS),
        ({"path": ARN_PATH}, unchanged, KEYS),
        ({"query": "Qualifier=live&MaxItems=5"}, unchanged, KEYS),
        ({"method": "GET", "body": b""}, unchanged, KEYS),
        ({"region": "ap-south-1"}, unchanged, KEYS),
        ({}, with_header(b"user-agent", b"something-else"), KEYS),  # not a signed header
        ({}, with_body(b'{"x": 2}'), "InvalidSignatureException"),
        ({}, with_path(b"/2015-03-31/functions/g/invocations"), "InvalidSignatureException"),
        ({}, with_query(b"Qualifier=other"), "InvalidSignatureException"),
        ({}, with_header(b"host", b"evil:1"), "InvalidSignatureException"),
        ({"secret": "x" * 40}, unchanged, "InvalidSignatureException"),
        ({"service": "s3"}, unchanged, "InvalidSignatureException"),
        ({}, with_header(b"authorization", b"Bearer nope"), "UnrecognizedClientException"),
        # An x-amz-* header changes behaviour: AWS requires it to be signed.
        ({}, with_header(b"x-amz-log-type", b"Tail"), "InvalidSignatureException"),
        ({}, with_header(b"x-amz-invocation-type", b"DryRun"), "InvalidSignatureException"),
        ({}, with_header(b"X-Amz-Client-Context".lower(), b"e30="), "InvalidSignatureException"),
        ({}, with_header(b"x-amzn-trace-id", b"Root=1-x"), KEYS),  # botocore never signs it
    ],
)
def test_signature_verification(monkeypatch, signing, change, expected):
    assert authenticate(change(signed(monkeypatch, **signing))) == expected


@pytest.mark.parametrize(
    ("skew", "expected"),
    [
        (timedelta(minutes=14), KEYS),
        (timedelta(minutes=-14), KEYS),
        (timedelta(minutes=16), "InvalidSignatureException"),
        (timedelta(minutes=-16), "InvalidSignatureException"),
    ],
)
def test_clock_skew_is_allowed_up_to_fifteen_minutes(monkeypatch, skew, expected):
    assert authenticate(signed(monkeypatch), now=NOW + skew) == expected


def test_expired_signature_says_so(monkeypatch):
    authenticator = Authenticator(Keyring([KEYS]), clock=lambda: NOW + timedelta(hours=1))
    with pytest.raises(errors.InvalidSignature, match=r"^Signature expired: 20260102T030405Z"):
        authenticator.authenticate(signed(monkeypatch))


def test_unknown_access_key_is_unrecognized(monkeypatch):
    request = signed(monkeypatch)
    other = Keyring([Credentials("AKIAOTHEROTHEROTHER1", "s" * 40, "k2")])
    with pytest.raises(errors.UnrecognizedClient):
        Authenticator(other, clock=lambda: NOW).authenticate(request)


def test_missing_authorization_is_a_missing_token():
    request = RawRequest("GET", b"/2015-03-31/functions", b"", [(b"host", b"h")], b"")
    with pytest.raises(errors.MissingAuthenticationToken):
        Authenticator(Keyring([KEYS])).authenticate(request)


@pytest.mark.parametrize(
    "header",
    [
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=AKIA/20260102/us-east-1/lambda, SignedHeaders=host, "
        "Signature=ab",
        "AWS3 Credential=a/b/c/d/e, SignedHeaders=host, Signature=ab",
    ],
)
def test_malformed_authorization_is_an_invalid_signature(header):
    with pytest.raises(errors.InvalidSignature):
        parse_authorization(header)


def test_secrets_stay_out_of_the_credentials_repr():
    assert KEYS.secret_access_key not in repr(KEYS)
    assert "api_key" not in repr(KEYS)
