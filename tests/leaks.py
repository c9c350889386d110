"""Canaries for tests: every form a secret may take once servers and renderers have encoded
it (URL, JSON, HTML, base64, up to three deep), looked for in a file or a stream.

Built by encoding, with the standard library's encoders, never by the harness's own decoding
(`mxconform.http.layers`): a test of the scrub must not share its blind spots.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Iterable
from functools import lru_cache
from itertools import product
from urllib.parse import quote, quote_plus

ENCODERS: dict[str, Callable[[str], str]] = {
    "url": lambda s: quote(s, safe=""),
    "url-plus": quote_plus,
    "json": lambda s: json.dumps(s)[1:-1],
    "html": html.escape,
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64url": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
}
MIN_FORM = 6  # shorter strings turn up in any text by chance


def compose(secret: str, names: Iterable[str]) -> str:
    """`secret` encoded by each of `names` in turn (the first is applied first)."""
    for name in names:
        secret = ENCODERS[name](secret)
    return secret


def in_base64_run(text: str) -> set[str]:
    """`text` as it shows inside a longer base64 run, at each of the three byte offsets it
    may start at: the characters its bytes alone decide (both alphabets)."""
    raw = text.encode()
    out = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        first, last = -(-shift * 8 // 6), (shift + len(raw)) * 8 // 6
        core = encoded[first:last]
        out |= {core, core.translate(str.maketrans("+/", "-_"))}
    return out


@lru_cache(maxsize=64)
def forms(secret: str, depth: int = 3) -> frozenset[str]:
    """Every composition of 1 to `depth` encoders, the secret itself, and each form of one
    fewer encoding inside a longer base64 run (that run is the last encoding)."""
    out = {secret}
    for n in range(1, depth + 1):
        out |= {compose(secret, names) for names in product(ENCODERS, repeat=n)}
    shallower = {secret} | {
        compose(secret, names) for n in range(1, depth) for names in product(ENCODERS, repeat=n)
    }
    for form in shallower:
        out |= in_base64_run(form)
    return frozenset(form for form in out if len(form) >= MIN_FORM)


def _as_written(form: str) -> set[str]:
    """A form as a renderer writes it: as is, JSON-escaped (ASCII or not, `<` as \\u003c in
    the page's inert data), HTML-escaped."""
    escaped = {json.dumps(form)[1:-1], json.dumps(form, ensure_ascii=False)[1:-1]}
    escaped |= {e.replace("<", "\\u003c") for e in escaped}
    return {form, html.escape(form), html.escape(form, quote=False), *escaped}


@lru_cache(maxsize=8)
def _index(secrets: tuple[str, ...], depth: int) -> dict[str, list[tuple[str, str]]]:
    """Each written form of each secret, by its first MIN_FORM characters."""
    index: dict[str, list[tuple[str, str]]] = {}
    for secret in secrets:
        for form in forms(secret, depth):
            for written in _as_written(form):
                index.setdefault(written[:MIN_FORM], []).append((written, secret))
    return index


def leaks(text: str, secrets: Iterable[str], depth: int = 3) -> list[str]:
    """The forms of `secrets` in `text` or in its HTML-unescaped reading (each shown by its
    first characters only: the report of a leak must not leak). Fast enough for a whole
    run's files: each text is cut once into MIN_FORM-grams, looked up in an index."""
    index = _index(tuple(sorted(set(secrets))), depth)
    found = set()
    for view in {text, html.unescape(text)}:
        grams = {view[at : at + MIN_FORM] for at in range(len(view) - MIN_FORM + 1)}
        for gram in grams & index.keys():
            for written, secret in index[gram]:
                if written in view:
                    found.add(f"{written[:4]}... (of {secret[:3]}...)")
    return sorted(found)


def assert_no_secret(text: str, secrets: list[str]) -> None:
    """The canary of console and file tests: no secret of the run, in any form above."""
    assert secrets, "the run handled no secret: the canary would prove nothing"
    leaked = leaks(text, secrets)
    assert not leaked, f"{len(leaked)} secret forms: {leaked}"
