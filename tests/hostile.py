"""Hostile servers for tests, on loopback only: each records what it receives and answers
with whatever its handler writes (echoes, drips, stalls, huge bodies, foreign origins).

Every loop is bounded: handlers wait on `server.stopping` (set when the `with` block ends)
and never for longer than `MAX_HOLD_S`.
"""

from __future__ import annotations

import json
import ssl
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_HOLD_S = 20.0  # no handler holds a connection longer than this


@dataclass
class Seen:
    """One request a stub received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Stub:
    url: str
    requests: list[Seen] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def origin(self) -> str:
        return self.url


Handler = Callable[[BaseHTTPRequestHandler, Seen, Stub], None]


def reply(
    h: BaseHTTPRequestHandler,
    status: int,
    body: bytes | str | dict[str, object] = b"",
    headers: dict[str, str] | None = None,
) -> None:
    """A whole response: JSON for a dict, else the bytes (text as UTF-8 HTML by default)."""
    ctype = "application/json"
    if isinstance(body, dict):
        data = json.dumps(body).encode()
    elif isinstance(body, str):
        data, ctype = body.encode(), "text/html; charset=utf-8"
    else:
        data, ctype = body, "application/octet-stream"
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(data)


@contextmanager
def serve(handle: Handler, tls: ssl.SSLContext | None = None) -> Iterator[Stub]:
    """A threaded HTTP(S) server on 127.0.0.1 (a free port) running `handle` per request."""
    stub = Stub(url="")

    class _H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # kept-alive: no delayed-ACK wait between writes

        def log_message(self, format: str, *args: object) -> None:
            return None

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(
                self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
            )
            stub.requests.append(seen)
            with suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
                handle(self, seen, stub)

        do_GET = do_POST = do_PUT = do_DELETE = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), _H)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    stub.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield stub
    finally:
        stub.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def gzip_bomb(mib: int = 1024, per_write: int = 64) -> Iterator[bytes]:
    """A valid gzip stream of `mib` MiB of zeros (about 1 KiB on the wire per MiB), made as
    it is sent: each MiB after a full flush compresses to the same bytes, so one is reused.
    Each piece decodes to `per_write` MiB."""
    zeros = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    first = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    header, block = first[:10], first[10:]
    crc = 0
    yield header
    for start in range(0, mib, per_write):
        n = min(per_write, mib - start)
        for _ in range(n):
            crc = zlib.crc32(zeros, crc)
        yield block * n
    yield b"\x03\x00" + struct.pack("<II", crc, (mib << 20) & 0xFFFFFFFF)  # final block


def gzipped(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """`pieces` gzipped once more, as they come (a stacked bomb: a few kB on the wire)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    for piece in pieces:
        yield packer.compress(piece)
    yield packer.flush()


def send_chunked(
    h: BaseHTTPRequestHandler, stub: Stub, pieces: Iterable[bytes], headers: dict[str, str]
) -> None:
    """A 200 whose body is `pieces` in chunked coding, until the client hangs up."""
    h.send_response(200)
    for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
        h.send_header(name, value)
    h.end_headers()
    for piece in pieces:
        if stub.stopping.is_set():
            return
        if piece:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
    h.wfile.write(b"0\r\n\r\n")


def recording(h: BaseHTTPRequestHandler, seen: Seen, stub: Stub) -> None:
    """A server that must never be contacted: it records, and answers 200 with nothing."""
    reply(h, 200, {})


def fake_oauth_server(foreign: str) -> Handler:
    """An authorisation server whose metadata sends the token endpoint, and whose login
    page posts the password, to `foreign` (another loopback port that records)."""

    def handle(h: BaseHTTPRequestHandler, seen: Seen, stub: Stub) -> None:
        path = seen.path.split("?")[0]
        if path.startswith("/.well-known/"):
            reply(
                h,
                200,
                {
                    "issuer": stub.url + "/",
                    "authorization_endpoint": stub.url + "/authorize",
                    "token_endpoint": foreign + "/oauth2/token",
                },
            )
        elif path == "/authorize":
            reply(h, 302, b"", {"Location": "/login"})
        elif path == "/login":
            reply(
                h,
                200,
                f'<html><body><form method="post" action="{foreign}/login">'
                '<input name="username"><input type="password" name="password">'
                '<input type="hidden" name="csrf" value="csrf-token-value">'
                '<button type="submit">Sign in</button></form></body></html>',
            )
        else:
            reply(h, 404, {"errcode": "M_NOT_FOUND"})

    return handle


def misdirecting_homeserver(foreign: str, keys: tuple[str, ...]) -> Handler:
    """A homeserver whose OAuth metadata puts `keys` (the issuer, endpoints) on `foreign`
    (another loopback port that records); everything else on its own origin."""

    def handle(h: BaseHTTPRequestHandler, seen: Seen, stub: Stub) -> None:
        path = seen.path.split("?")[0]
        if path == "/_matrix/client/versions":
            reply(h, 200, {"versions": ["v1.18"]})
        elif path.endswith("/auth_metadata") or path.startswith("/.well-known/openid"):
            names = ("authorization", "token", "revocation", "registration")
            data: dict[str, object] = {
                "issuer": stub.url + "/",
                **{f"{n}_endpoint": f"{stub.url}/oauth2/{n}" for n in names},
                "device_authorization_endpoint": stub.url + "/oauth2/device",
                "account_management_uri": stub.url + "/account/",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
            }
            for key in keys:
                data[key] = str(data[key]).replace(stub.url, foreign)
            reply(h, 200, data)
        else:
            reply(h, 404, {"errcode": "M_UNRECOGNIZED", "error": "not here"})

    return handle
