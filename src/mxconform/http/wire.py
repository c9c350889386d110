"""What comes off the wire, taken in bounded steps: bodies decoded by us, JSON nesting
measured before anything parses it, bytes a server sends beyond the response asked for.

httpx decodes a gzip chunk in one call, so one 64 KiB chunk on the wire could grow to
64 MiB before a size cap saw it; here each step yields at most `STEP` decoded bytes, and
only one level of content coding is taken (`gzip, gzip` is refused, not unwrapped twice).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from itertools import accumulate, count
from operator import sub
from typing import Any

import httpx

from mxconform.errors import HarnessError

STEP = 64 * 1024  # decoded bytes per step: what the size cap may be passed by, at most
ACCEPT_ENCODING = "gzip, deflate"  # what we decode, so what we ask for
# Matrix bodies nest a handful of levels (event content, UIA flows, cross-signing keys
# by user, by key id); 64 is ten times that, and far below Python's recursion limit
# (about 1000 frames) that `json.loads`, the redaction and `json.dumps` each recurse into.
MAX_JSON_DEPTH = 64

_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class UndecodableBody(HarnessError):
    """The body's content coding is one we refuse, or it does not decode."""


class TooDeep(HarnessError):
    """A JSON body nested deeper than `MAX_JSON_DEPTH`: never parsed, never judged."""


class UnsolicitedData(HarnessError):
    """The server sent bytes beyond the response asked for: the connection is dropped."""


class BodyDecoder:
    """One response's content coding undone incrementally, at most `STEP` bytes a step."""

    def __init__(self, coding: str = "identity") -> None:
        self.coding = coding
        wbits = _WBITS.get(coding)
        self._zlib = zlib.decompressobj(wbits) if wbits is not None else None
        self._first = True

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of the next wire bytes (trailing bytes after the end are
        ignored, as httpx does)."""
        if self._zlib is None:
            if data:
                yield data
            return
        piece = self._inflate(data)
        while piece:
            yield piece
            piece = self._inflate(self._zlib.unconsumed_tail)

    def _inflate(self, data: bytes) -> bytes:
        assert self._zlib is not None
        if self._zlib.eof:
            return b""
        first, self._first = self._first, False
        try:
            return self._zlib.decompress(data, STEP)
        except zlib.error as exc:
            if not (first and self.coding == "deflate"):
                raise UndecodableBody(f"the body does not decode as {self.coding}: {exc}") from None
        # servers send raw deflate for `deflate` too: httpx retries the same way
        self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inflate(data)

    def end(self) -> Iterator[bytes]:
        """What is left once the wire has ended (a cut-short stream is taken as it is)."""
        yield from self.feed(b"")


def body_decoder(headers: httpx.Headers) -> BodyDecoder:
    """The decoder a response's `Content-Encoding` asks for: one of gzip, deflate or
    identity; stacked codings and any other are refused (UndecodableBody)."""
    named = headers.get_list("content-encoding", split_commas=True)
    codings = [c.strip().lower() for c in named if c.strip().lower() not in ("", "identity")]
    if len(codings) > 1:
        raise UndecodableBody(
            f"Content-Encoding {', '.join(named)!r} refused: stacked codings are not "
            "unwrapped (one level of gzip or deflate only)"
        )
    if codings and codings[0] not in _WBITS:
        raise UndecodableBody(
            f"Content-Encoding {codings[0]!r} refused: not asked for ({ACCEPT_ENCODING})"
        )
    return BodyDecoder(codings[0] if codings else "identity")


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)  # a string, or its cut-off rest
_OPEN, _CLOSE = b"\x02", b"\x00"
_MARKS = bytes.maketrans(b"[{]}", _OPEN * 2 + _CLOSE * 2)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def _deeper(data: bytes, limit: int) -> bool:
    """Over UTF-8 bytes (no multi-byte sequence holds an ASCII byte): brackets outside
    strings, each pass removing the innermost pairs, all in C; no parse, no recursion."""
    if data.count(b"[") + data.count(b"{") <= limit or data.lstrip(b" \t\r\n")[:1] not in b"[{":
        return False  # the parser only descends from a document that opens with [ or {
    brackets = marks = _STRING.sub(b"", data).translate(_MARKS, _NOT_BRACKETS)
    for _ in range(limit):  # a pass takes one level off every nest
        shorter = marks.replace(_OPEN + _CLOSE, b"")
        if len(shorter) == len(marks):
            break
        marks = shorter
    if not marks or _OPEN + _CLOSE in marks:
        return bool(marks)  # empty: none deeper; a pair left: one deeper than `limit`
    # brackets that never close (not JSON, but the parser descends into them first):
    # the deepest point is the most of (twice the opens so far) minus (brackets so far)
    return max(map(sub, accumulate(brackets), count(1)), default=0) > limit


def nested_deeper(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsing `text` as JSON would descend more than `limit` arrays or objects."""
    return _deeper(text.encode("utf-8", "surrogatepass"), limit)


def bytes_nested_deeper(content: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """`nested_deeper` for a body as `json.loads` (and httpx's `.json()`) reads bytes."""
    if content.count(b"[") + content.count(b"{") <= limit:
        return False
    encoding = json.detect_encoding(content)
    if encoding == "utf-8":
        return _deeper(content, limit)  # (invalid UTF-8: json.loads fails before parsing)
    try:
        text = content.decode(encoding, "surrogatepass")
    except UnicodeDecodeError:
        return False  # json.loads fails on it before it parses anything
    return nested_deeper(text, limit)


_HOPS = ("_stream", "_httpcore_stream", "_connection")  # httpx's stream → httpcore's → h11's


def _h11_state(response: httpx.Response) -> Any:
    """httpcore's h11 connection behind a streamed response, or None (HTTP/2, a mock).
    No public API exposes it: the walk is pinned by tests/test_unsolicited.py."""
    node: Any = response.stream
    for _ in range(6):
        state = getattr(node, "_h11_state", None)
        if state is not None and hasattr(state, "trailing_data"):
            return state
        node = next((getattr(node, a) for a in _HOPS if hasattr(node, a)), None)
    return None


def leftover(response: httpx.Response) -> bytes | None:
    """The bytes h11 holds past the end of a fully read response (None: cannot tell). On
    a kept-alive connection they would be read as the next request's answer: httpcore
    drops a pooled connection only when its socket is readable, and these bytes have
    already left the socket (RFC 9112 6.3: never process them as a response)."""
    state = _h11_state(response)
    return None if state is None else bytes(state.trailing_data[0])


async def drop_connection(response: httpx.Response) -> None:
    """Close the socket under a response, so the pool discards the connection (it finds
    it readable) instead of reading the next answer from what was left."""
    stream = response.extensions.get("network_stream")
    if stream is not None:
        await stream.aclose()
