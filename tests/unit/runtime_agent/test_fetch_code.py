"""The ``fetch-code`` init container against a real HTTP server on 127.0.0.1.

Each test serves a zip the way the platform will (bearer token, by URL) and runs
``fetch_code.main`` with the environment a pod gets, then looks at the code directory
and at the one line the init container prints.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import os
import socket
import stat
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubelambda_agent import fetch_code

TOKEN = "code-token-" + "s" * 32
HANDLER = b"def handler(event, context):\n    return 'hi'\n"


def make_zip(entries: dict[str, tuple[bytes, int]]) -> bytes:
    """A zip made on unix: name -> (content, mode with its file type)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (content, mode) in entries.items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            archive.writestr(info, content)
    return buffer.getvalue()


@dataclass
class CodeServer:
    """Serves ``packages`` (path -> body) to requests bearing ``TOKEN``; the first
    ``failures`` requests get a 503 instead."""

    port: int
    packages: dict[str, bytes] = field(default_factory=dict)
    failures: int = 0
    # Without a Content-Length the body ends when the server closes (HTTP/1.0).
    send_length: bool = True
    requests: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[CodeServer]:
    state = CodeServer(port=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            if state.failures:
                state.failures -= 1
                self.send_error(503)
                return
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.send_error(401)
                return
            body = state.packages.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            if state.send_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # The client may stop reading at its size limit, as it should.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "task"
    directory.mkdir()
    return directory


def environment(url: str, body: bytes, code_dir: Path, **overrides: str) -> dict[str, str]:
    return {
        "KUBELAMBDA_CODE_URL": url,
        "KUBELAMBDA_CODE_SHA256": hashlib.sha256(body).hexdigest(),
        "KUBELAMBDA_CODE_TOKEN": TOKEN,
        "KUBELAMBDA_CODE_DIR": str(code_dir),
        **overrides,
    }


def run(environ: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = fetch_code.main(environ)
    out, err = capsys.readouterr()
    return status, out, err


def test_package_is_unpacked_read_only(
    server: CodeServer, code_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = make_zip(
        {
            "app.py": (HANDLER, stat.S_IFREG | 0o644),
            "lib/": (b"", stat.S_IFDIR | 0o755),
            "lib/util.py": (b"X = 1\n", stat.S_IFREG | 0o664),
        }
    )
    server.packages["/code/abc.zip"] = body

    status, out, err = run(environment(server.url("/code/abc.zip"), body, code_dir), capsys)

    assert (status, err) == (0, "")
    assert out.startswith("fetch-code: 2 files")
    assert (code_dir / "app.py").read_bytes() == HANDLER
    assert (code_dir / "lib" / "util.py").read_text() == "X = 1\n"
    assert stat.S_IMODE((code_dir / "app.py").stat().st_mode) == 0o444
    assert stat.S_IMODE((code_dir / "lib" / "util.py").stat().st_mode) == 0o444
    assert stat.S_IMODE((code_dir / "lib").stat().st_mode) == 0o555


def test_executable_bit_is_kept(
    server: CodeServer, code_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = make_zip(
        {
            "bootstrap": (b"#!/bin/sh\necho hi\n", stat.S_IFREG | 0o755),
            "data.txt": (b"plain", stat.S_IFREG | 0o644),
        }
    )
    server.packages["/p.zip"] = body

    status, _, _ = run(environment(server.url("/p.zip"), body, code_dir), capsys)

    assert status == 0
    assert stat.S_IMODE((code_dir / "bootstrap").stat().st_mode) == 0o555
    assert os.access(code_dir / "bootstrap", os.X_OK)
    assert stat.S_IMODE((code_dir / "data.txt").stat().st_mode) == 0o444


def test_wrong_token_fails_with_the_status_and_never_prints_the_token(
    server: CodeServer, code_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = make_zip({"app.py": (HANDLER, stat.S_IFREG | 0o644)})
    server.packages["/p.zip"] = body
    environ = environment(
        server.url("/p.zip"), body, code_dir, KUBELAMBDA_CODE_TOKEN="wrong-" + "w" * 40
    )

    status, out, err = run(environ, capsys)

    assert status == 1
    assert out == ""
    assert err == f"fetch-code: GET {server.url('/p.zip')} answered 401 Unauthorized\n"
    assert "w" * 40 not in err
    assert server.requests == 1, "a 4xx is not retried"
    assert list(code_dir.iterdir()) == []


def test_digest_mismatch_is_refused(
    server: CodeServer, code_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = make_zip({"app.py": (HANDLER, stat.S_IFREG | 0o644)})
    server.packages["/p.zip"] = body
    expected = hashlib.sha256(b"another package").hexdigest()
    environ = environment(server.url("/p.zip"), body, code_dir, KUBELAMBDA_CODE_SHA256=expected)

    status, _, err = run(environ, capsys)

    assert status == 1
    actual = hashlib.sha256(body).hexdigest()
    assert err == (
        f"fetch-code: SHA-256 mismatch for {server.url('/p.zip')}: "
        f"got {actual}, expected {expected}\n"
    )
    assert list(code_dir.iterdir()) == []


@pytest.mark.parametrize("send_length", [True, False], ids=["length-given", "length-unknown"])
def test_package_over_50_mb_is_refused(
    server: CodeServer, code_dir: Path, capsys: pytest.CaptureFixture[str], send_length: bool
) -> None:
    body = b"\0" * (fetch_code.MAX_ZIPPED_BYTES + 1)
    server.packages["/big.zip"] = body
    server.send_length = send_length

    status, _, err = run(environment(server.url("/big.zip"), body, code_dir), capsys)

    assert status == 1
    assert err == (
        f"fetch-code: the package at {server.url('/big.zip')} is larger than "
        f"{fetch_code.MAX_ZIPPED_BYTES} bytes (Lambda's limit for a zipped package)\n"
    )
    assert server.requests == 1, "too big is not retried"


@pytest.mark.parametrize(
    "name", ["../escape.py", "lib/../../escape.py", "/etc/escape.py", "lib\\..\\escape.py"]
)
def test_entry_leaving_the_directory_is_refused(
    server: CodeServer,
    code_dir: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    body = make_zip(
        {"app.py": (HANDLER, stat.S_IFREG | 0o644), name: (b"owned", stat.S_IFREG | 0o644)}
    )
    server.packages["/p.zip"] = body

    status, _, err = run(environment(server.url("/p.zip"), body, code_dir), capsys)

    assert status == 1
    assert err == f"fetch-code: the package has an entry outside its directory: {name!r}\n"
    assert list(code_dir.iterdir()) == []
    assert not (code_dir.parent / "escape.py").exists()


def test_symbolic_link_is_refused(
    server: CodeServer, code_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = make_zip({"passwd": (b"/etc/passwd", stat.S_IFLNK | 0o777)})
    server.packages["/p.zip"] = body

    status, _, err = run(environment(server.url("/p.zip"), body, code_dir), capsys)

    assert status == 1
    assert err == "fetch-code: the package has a symbolic link, which is refused: 'passwd'\n"
    assert list(code_dir.iterdir()) == []


def test_unpacked_size_is_capped() -> None:
    body = make_zip({"big.bin": (b"\0" * 5000, stat.S_IFREG | 0o644)})

    with pytest.raises(fetch_code.FetchError, match="unzips to more than 4096 bytes"):
        fetch_code.unpack(io.BytesIO(body), "/nonexistent", max_bytes=4096)


def test_what_a_previous_attempt_left_is_replaced(
    server: CodeServer, code_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = make_zip({"app.py": (HANDLER, stat.S_IFREG | 0o644)})
    server.packages["/p.zip"] = body
    environ = environment(server.url("/p.zip"), body, code_dir)
    assert run(environ, capsys)[0] == 0

    # The pod's sandbox restarted: the emptyDir kept the read-only code of the first run.
    status, _, err = run(environ, capsys)

    assert (status, err) == (0, "")
    assert sorted(p.name for p in code_dir.iterdir()) == ["app.py"]


def test_server_errors_are_retried(
    server: CodeServer, code_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = make_zip({"app.py": (HANDLER, stat.S_IFREG | 0o644)})
    server.packages["/p.zip"] = body
    server.failures = 2

    status, _, err = run(environment(server.url("/p.zip"), body, code_dir), capsys)

    assert (status, err) == (0, "")
    assert server.requests == 3
    assert (code_dir / "app.py").read_bytes() == HANDLER


def test_unreachable_server_gives_up_after_the_retry_window(code_dir: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    source = fetch_code.CodeSource(
        url=f"http://127.0.0.1:{port}/p.zip", sha256="0" * 64, token=TOKEN
    )
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(fetch_code.FetchError) as caught:
        fetch_code.download(
            source, io.BytesIO(), retry_seconds=30.0, clock=lambda: now[0], sleep=sleep
        )

    message = str(caught.value)
    assert message.startswith(f"cannot fetch http://127.0.0.1:{port}/p.zip: ")
    assert "Connection refused" in message
    assert message.endswith("attempts)")
    assert 25.0 <= now[0] <= 30.0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("KUBELAMBDA_CODE_URL", "file:///etc/passwd", "is not an http(s) URL"),
        ("KUBELAMBDA_CODE_SHA256", "abc", "must be 64 hex digits"),
        ("KUBELAMBDA_CODE_TOKEN", "", "must be set to printable ASCII"),
        ("KUBELAMBDA_CODE_TOKEN", "a\r\nX-Injected: 1", "must be set to printable ASCII"),
        ("KUBELAMBDA_CODE_DIR", "relative/dir", "must be an absolute directory"),
        ("KUBELAMBDA_CODE_DIR", "/", "must be an absolute directory"),
    ],
)
def test_bad_setting_exits_2_naming_the_variable(
    code_dir: Path,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    message: str,
) -> None:
    environ = environment("http://127.0.0.1:1/p.zip", b"", code_dir, **{variable: value})

    status, _, err = run(environ, capsys)

    assert status == 2
    assert err.startswith(f"fetch-code: invalid configuration: {variable}")
    assert message in err
    assert "X-Injected" not in err
