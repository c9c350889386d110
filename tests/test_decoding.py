"""Bodies are decoded by the harness in bounded steps: a gzip bomb, stacked or not, ends
at the size cap in bounded memory (measured in a child process, whose high-water mark is
its own); bodies within the cap still decode; codings we did not ask for are refused."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import pytest
from hostile import gzip_bomb, gzipped, reply, send_chunked, serve

from mxconform.errors import HarnessError, TargetUnavailable
from mxconform.http.client import MatrixClient, Pacer, RequestPolicy, new_http_client
from mxconform.http.evidence import Recorder
from mxconform.http.limits import ResponseTooLarge
from mxconform.http.redact import SecretRegistry
from mxconform.http.wire import STEP, BodyDecoder, UndecodableBody
from mxconform.targets.preflight import identify

SRC = Path(__file__).resolve().parent.parent / "src"
MB = 1024 * 1024

# One request from a fresh process: its peak RSS before and after, and how it ended.
_PROBE = """
import asyncio, json, resource, sys
from mxconform.errors import HarnessError, TargetUnavailable
from mxconform.http.client import MatrixClient, Pacer, RequestPolicy, new_http_client
from mxconform.http.evidence import Recorder
from mxconform.http.redact import SecretRegistry

async def main(url):
    async with new_http_client() as http:
        c = MatrixClient(http, url, Recorder(), SecretRegistry(), Pacer(1000), RequestPolicy())
        try:
            resp = await c.request("GET", "/bomb")
        except HarnessError as exc:
            return f"{type(exc).__name__}: {exc}", c.recorder.exchanges[0].error
        return f"HTTP {resp.status_code}, {len(resp.content)} bytes", None

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ended, recorded = asyncio.run(main(sys.argv[1]))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kib": before, "after_kib": after, "ended": ended, "recorded": recorded}))
"""


def _probe(url: str) -> dict[str, object]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, url], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _bomb(encoding: str, stacked: bool):
    def handler(h, seen, stub):
        pieces = gzipped(gzip_bomb()) if stacked else gzip_bomb()
        send_chunked(
            h, stub, pieces, {"Content-Type": "application/json", "Content-Encoding": encoding}
        )

    return handler


def test_a_gzip_bomb_stops_at_the_cap_in_bounded_memory():
    """About 1 MB of gzip on the wire, 1 GiB decoded, in 64 KiB writes of 64 MiB each."""
    with serve(_bomb("gzip", stacked=False)) as stub:
        seen = _probe(stub.url)
    growth_mb = (int(seen["after_kib"]) - int(seen["before_kib"])) / 1024
    assert str(seen["ended"]).startswith("ResponseTooLarge"), seen
    assert "over the cap of 4194304 bytes (decoded gzip)" in str(seen["recorded"]), seen
    assert growth_mb < 50, growth_mb
    print(f"\ngzip bomb (1 GiB in ~1 MB): {seen['recorded']}; peak RSS grew {growth_mb:.1f} MB")


def test_a_stacked_gzip_bomb_is_refused_in_bounded_memory():
    """`gzip, gzip`: 2.5 kB on the wire, 1 MB after one level, 1 GiB after two."""
    with serve(_bomb("gzip, gzip", stacked=True)) as stub:
        seen = _probe(stub.url)
    growth_mb = (int(seen["after_kib"]) - int(seen["before_kib"])) / 1024
    assert str(seen["ended"]).startswith("UndecodableBody"), seen
    assert "Content-Encoding 'gzip, gzip' refused" in str(seen["recorded"]), seen
    assert growth_mb < 50, growth_mb
    print(f"\nstacked gzip bomb: {seen['recorded']}; peak RSS grew {growth_mb:.1f} MB")


def _client(url: str, http: httpx.AsyncClient) -> MatrixClient:
    return MatrixClient(
        http, url, Recorder(), SecretRegistry(), Pacer(1000), RequestPolicy(max_response_bytes=8192)
    )


PAYLOAD = b'{"ok": true, "pad": "' + b"p" * 5000 + b'"}'


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as RFC 9110 means it
        ("deflate", _raw_deflate),  # raw, as some servers send it
        ("identity", lambda b: b),
        ("GZip, identity", gzip.compress),
    ],
)
async def test_bodies_within_the_cap_still_decode(encoding, encode):
    def handler(h, seen, stub):
        reply(h, 200, encode(PAYLOAD), {"Content-Encoding": encoding})

    with serve(handler) as stub:
        async with new_http_client() as http:
            c = _client(stub.url, http)
            resp = await c.request("GET", "/small")
    assert resp.content == PAYLOAD and resp.json()["ok"] is True
    assert "content-encoding" not in resp.headers  # decoded once, by us
    assert c.recorder.exchanges[0].error is None
    assert stub.requests[0].headers["Accept-Encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("br", b"\x0b\x02\x80ok\x03", "Content-Encoding 'br' refused: not asked for"),
        ("zstd", b"(\xb5/\xfd", "Content-Encoding 'zstd' refused"),
        ("deflate, gzip", b"", "Content-Encoding 'deflate, gzip' refused: stacked"),
        ("gzip", b"\x1f\x8b\x08\x00not gzip at all", "does not decode as gzip"),
    ],
)
async def test_codings_we_did_not_ask_for_or_cannot_decode_are_errors(encoding, body, message):
    def handler(h, seen, stub):
        reply(h, 200, body, {"Content-Encoding": encoding})

    with serve(handler) as stub:
        async with new_http_client() as http:
            c = _client(stub.url, http)
            with pytest.raises(UndecodableBody, match=message) as raised:
                await c.request("GET", "/coded")
    assert isinstance(raised.value, HarnessError)  # ERROR, never judged
    assert message.split(":")[0] in (c.recorder.exchanges[0].error or "")


async def test_a_body_over_the_cap_after_decoding_is_too_large():
    def handler(h, seen, stub):
        reply(h, 200, gzip.compress(b"x" * 20000), {"Content-Encoding": "gzip"})

    with serve(handler) as stub:
        async with new_http_client() as http:
            c = _client(stub.url, http)
            with pytest.raises(ResponseTooLarge, match=r"8192 bytes \(decoded gzip\)"):
                await c.request("GET", "/big")


def test_the_decoder_yields_at_most_one_step_per_piece():
    """One wire chunk of a bomb (64 KiB → 64 MiB) comes out a step at a time, lazily."""
    chunk = b"".join(gzip_bomb(mib=64, per_write=64))
    decoder = BodyDecoder("gzip")
    pieces = decoder.feed(chunk)
    sizes = [len(next(pieces)) for _ in range(3)]
    assert sizes == [STEP, STEP, STEP]
    total = 3 * STEP + sum(len(p) for p in pieces) + sum(len(p) for p in decoder.end())
    assert total == 64 * MB


@pytest.mark.parametrize(("encoding", "stacked"), [("gzip", False), ("gzip, gzip", True)])
def test_a_bomb_at_versions_is_one_preflight_reason(encoding, stacked):
    """Preflight reads `/versions` with the same bounded decoder (its own 1 MiB cap)."""
    with serve(_bomb(encoding, stacked)) as stub:
        started = time.monotonic()
        with pytest.raises(TargetUnavailable, match="not a Matrix homeserver") as raised:
            identify(stub.url, 5.0)
    assert time.monotonic() - started < 3.0
    if stacked:
        assert "'gzip, gzip' refused" in str(raised.value)
