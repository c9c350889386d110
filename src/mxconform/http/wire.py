"""What comes off the wire, taken in bounded steps: bodies decoded by us.

httpx decodes a gzip chunk in one call, so one 64 KiB chunk on the wire could grow to
64 MiB before a size cap saw it; here each step yields at most `STEP` decoded bytes, and
only one level of content coding is taken (`gzip, gzip` is refused, not unwrapped twice).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import httpx

from mxconform.errors import HarnessError

STEP = 64 * 1024  # decoded bytes per step: what the size cap may be passed by, at most
ACCEPT_ENCODING = "gzip, deflate"  # what we decode, so what we ask for

_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class UndecodableBody(HarnessError):
    """The body's content coding is one we refuse, or it does not decode."""


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
