"""The layers under a text: what it says once its URL escapes, JSON string escapes, HTML
entities or base64 runs are decoded, then decoded again, to `DEPTH` layers.

A server that echoes a secret URL-encoded inside a JSON string inside an HTML page (or
base64-encoded in any of them) hides it from a search of the text itself; a search of each
layer finds it. Registering every composed form of every secret instead would cost thousands
of forms per secret, and would still miss an encoder's own choices (`\\/`, `&#x70;`, `%70`).

Each layer keeps the way back: any span of it maps to the span of the original text its
characters were decoded from, so a secret found in a layer is masked in the original and the
text around it stays readable. Every decoding is the standard library's (`urllib.parse`,
`json`, `html`, `base64`); only the positions are kept here.
"""

from __future__ import annotations

import base64
import html
import json
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

DEPTH = 3  # compositions of up to three encodings are decoded
MIN_BYTES = 6  # as short as a secret may be (see redact._MIN_SECRET_LEN)

# One escape each (a whole UTF-8 sequence for URL text, a surrogate pair for JSON), so each
# decoded character maps to the escape it came from.
_URL = re.compile(
    r"%[0-7][0-9A-Fa-f]|%[CDcd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]"
    r"|%[Ee][0-9A-Fa-f](?:%[89ABab][0-9A-Fa-f]){2}|%[Ff][0-7](?:%[89ABab][0-9A-Fa-f]){3}"
    r"|%[0-9A-Fa-f]{2}|\+"
)
_JSON = re.compile(
    r"\\u[Dd][89ABab][0-9A-Fa-f]{2}\\u[Dd][C-Fc-f][0-9A-Fa-f]{2}"
    r"|\\u[0-9A-Fa-f]{4}|\\[\"\\/bfnrt]"
)
_HTML = re.compile(r"&(?:#[0-9]{1,8};?|#[Xx][0-9A-Fa-f]{1,7};?|[A-Za-z][A-Za-z0-9]{1,31};?)")
# Each byte of a text as base64 reads it: the urlsafe alphabet as the standard one, any
# other character as "A" (zero bits).
_STANDARD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_AS_BASE64 = bytes(
    c if c in _STANDARD else b"+/"[b"-_".index(c)] if c in b"-_" else ord("A") for c in range(256)
)
# What decoded base64 must look like to be read on: text, as every encoding of a secret is.
# Random bytes (a word read as base64) rarely hold six such characters in a row.
_TEXTUAL = re.compile(f"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]{{{MIN_BYTES},}}")
_SEPARATOR = "\x00"  # between decoded base64 pieces: no form of a secret spans it

_WHOLE, _BASE64 = 0, 1  # a piece's characters map to its whole escape / by base64 arithmetic


@dataclass
class Layer:
    """A decoded text and its way back to its parent's characters. Outside its pieces, a
    character maps one to one (shifted by the pieces before it)."""

    text: str
    parent: Layer | None = None
    starts: list[int] = field(default_factory=list)  # where each piece begins, ascending
    # (start, end) in this layer; (start, end) in the parent, or for base64 (run start,
    # offset of the piece's first byte in the run's bytes); how it maps
    pieces: list[tuple[int, int, int, int, int]] = field(default_factory=list)

    def _up(self, at: int) -> tuple[int, int]:
        """The parent span of this layer's character `at`."""
        n = bisect_right(self.starts, at) - 1
        if n < 0:
            return at, at + 1
        start, end, src, src_end, how = self.pieces[n]
        if how == _WHOLE:
            if at >= end:  # copied as it was, after piece n
                return src_end + at - end, src_end + at - end + 1
            return src, src_end
        at = min(at, end - 1)  # a separator: as the piece's last character
        first = src_end + len(self.text[start:at].encode("utf-8", "surrogatepass"))
        size = len(self.text[at].encode("utf-8", "surrogatepass"))
        return src + first * 8 // 6, src - (-(first + size) * 8 // 6)

    def windows(self, reach: int) -> list[tuple[int, int]]:
        """Where in this layer a form at most `reach` long may be that its parent does not
        show: overlapping a piece (elsewhere the layer copies its parent)."""
        out: list[tuple[int, int]] = []
        for start, end, *_ in self.pieces:
            low, high = max(0, start - reach), end + reach
            if out and low <= out[-1][1]:
                out[-1] = (out[-1][0], high)
            else:
                out.append((low, high))
        return out

    def origin(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that [start, end) of this layer was decoded from."""
        layer: Layer | None = self
        while layer is not None and layer.parent is not None:
            start, end = layer._up(start)[0], layer._up(end - 1)[1]
            layer = layer.parent
        return start, end


def _substitute(
    layer: Layer, pattern: re.Pattern[str], decode: Callable[[str], str]
) -> Layer | None:
    """`layer` with each match of `pattern` replaced by its decoding (None if none decodes)."""
    text, parts, done, length = layer.text, [], 0, 0
    child = Layer("", layer)
    for match in pattern.finditer(text):
        raw = match.group(0)
        decoded = decode(raw)
        if decoded == raw:
            continue
        start = length + match.start() - done
        parts += [text[done : match.start()], decoded]
        length, done = start + len(decoded), match.end()
        child.starts.append(start)
        child.pieces.append((start, length, match.start(), match.end(), _WHOLE))
    if not child.pieces:
        return None
    parts.append(text[done:])
    child.text = "".join(parts)
    return child


def _url(raw: str) -> str:
    return " " if raw == "+" else unquote(raw, errors="replace")


def _json(raw: str) -> str:
    decoded: str = json.loads(f'"{raw}"')
    return decoded


def _base64(layer: Layer) -> Layer | None:
    """The text read as base64 (either alphabet) from each of its first four characters (an
    encoding may start anywhere), each character outside the alphabet read as "A": runs of
    those decode to zero bytes, which part the pieces. Only text-like pieces are kept."""
    # three "A"s more: a run that ends the text without its padding still decodes whole
    alphabet = layer.text.encode("ascii", "replace").translate(_AS_BASE64) + b"AAA"
    # the four readings in one decoding, each a whole number of groups, zero bytes between
    usable = [(len(alphabet) - skip) // 4 * 4 for skip in range(4)]
    readings = [alphabet[skip : skip + usable[skip]] for skip in range(4) if usable[skip] >= 8]
    if not readings:
        return None
    # bytes that are not UTF-8 become lone surrogates, which no piece holds
    data = base64.b64decode(b"AAAA".join(readings)).decode("utf-8", "surrogateescape")
    parts: list[str] = []
    child = Layer("", layer)
    length = done = first = 0  # first: the byte offset of data[done]
    for piece in _TEXTUAL.finditer(data):
        first += len(data[done : piece.start()].encode("utf-8", "surrogateescape"))
        done = piece.start()
        skip, at = 0, first  # which reading the piece is from, and where in it
        while at >= usable[skip] // 4 * 3 + 3:
            at -= usable[skip] // 4 * 3 + 3
            skip += 1
        decoded = piece.group(0)
        child.starts.append(length)
        end = length + len(decoded)
        child.pieces.append((length, end, skip, at, _BASE64))
        parts += [decoded, _SEPARATOR]
        length = end + 1
    if not child.pieces:
        return None
    child.text = "".join(parts)
    return child


def _decodings(layer: Layer) -> Iterator[Layer]:
    text = layer.text
    if "%" in text or "+" in text:
        found = _substitute(layer, _URL, _url)
        if found is not None:
            yield found
    if "\\" in text:
        found = _substitute(layer, _JSON, _json)
        if found is not None:
            yield found
    if "&" in text:
        found = _substitute(layer, _HTML, html.unescape)
        if found is not None:
            yield found
    found = _base64(layer)
    if found is not None:
        yield found


def layers(text: str, depth: int = DEPTH) -> Iterator[Layer]:
    """Every decoded layer of `text` (not the text itself), each decoding of each layer in
    turn, to `depth` decodings deep."""
    stack = [(Layer(text), 0)]
    seen = {text}  # decodings that commute (URL then HTML, HTML then URL) give one layer
    while stack:
        layer, level = stack.pop()
        if level == depth:
            continue
        for found in _decodings(layer):
            if found.text not in seen:
                seen.add(found.text)
                yield found
                stack.append((found, level + 1))
