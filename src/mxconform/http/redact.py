"""Redaction: no token, password or secret the harness handles may reach a file.

Two layers. Structural: known secret fields (JSON keys, form fields, query parameters, headers)
are masked wherever they appear, and their values are remembered. By value: every remembered
secret is then scrubbed from any text that is stored (URLs, messages, logs), and from each
layer under it (URL, JSON, HTML and base64 decoded, three deep: `layers.py`).

A scrubbed text is also always writable: a lone surrogate (JSON may carry `"\ud800"`) becomes
U+FFFD, else the UTF-8 files and streams the text is written to raise.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from mxconform.http.layers import layers
from mxconform.http.wire import nested_deeper

# Keys whose values are secrets wherever they appear (JSON bodies, forms, query strings).
SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",  # a signed statement of who the user is: a bearer of identity
        "password",
        "new_password",
        "client_secret",
        "shared_secret",
        "registration_shared_secret",
        "mac",
        "login_token",
        "token",
        "id_access_token",
        "code_verifier",
        "code",
        "device_code",
        "csrf",
    }
)
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
_MIN_SECRET_LEN = 6  # shorter values would scrub innocent text
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def writable(text: str) -> str:
    """`text` with each lone surrogate as U+FFFD: encodable as UTF-8 (strictly)."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def mask(kind: str) -> str:
    return f"<redacted:{kind}>"


_MASK = re.compile(r"<redacted:[a-z_]+>")


def _base64_forms(raw: bytes) -> set[str]:
    forms = set()
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode()
        forms |= {text, text.rstrip("=")}
    return forms


_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def encodings(value: str) -> set[str]:
    """Every form a secret takes on the wire or on a page: literal, JSON-escaped (ASCII or
    not), HTML-escaped, URL-encoded (both ways, either hex case) and base64 (both alphabets,
    with and without padding). A server echoing a secret in any of them must not leak it."""
    raw = value.encode("utf-8", "surrogatepass")  # a lone surrogate is a secret's too
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    escaped = html.escape(value, quote=True)
    forms |= {escaped, escaped.replace("&#x27;", "&#39;"), html.escape(value, quote=False)}
    for encoded in {quote(raw, safe=""), quote_plus(raw), quote(raw)}:
        forms.add(encoded)
        if "%" in encoded:  # most tokens have nothing to escape: no second pass
            forms.add(_HEX_ESCAPE.sub(lambda m: m.group(0).lower(), encoded))
    forms |= _base64_forms(raw)
    return forms


def _trie_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """One regular expression for many literal strings, shaped as a trie: matching costs
    about the same for 10 secrets as for 4,000 (a flat alternation is tried one by one at
    every position), and the longest form wins where one is a prefix of another."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        # A run of single-child nodes is one literal (walked, not recursed: a secret may be
        # thousands of characters long); only real branch points nest.
        branches = []
        for char, child in node.items():
            if not char:
                continue
            run = [char]
            while "" not in child and len(child) == 1:
                (char, child), *_ = child.items()
                run.append(char)
            branches.append(re.escape("".join(run)) + build(child))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:
            return f"(?:{body})?"
        return body

    return re.compile(build(trie))


class SecretRegistry:
    """Every secret value seen in this run, kept in memory only, for scrubbing by value
    in every encoding it may take (see `encodings`).

    Secrets arrive all through a run (each login brings a token) and scrubbing is far more
    frequent than adding, so the forms sit in compiled levels of roughly doubling size (each
    form is recompiled about log n times in a run, never at each new secret); the newest few
    and the very long ones are looked for one by one. A text is scrubbed by masking the union
    of every match of every level: where two secrets' forms overlap, neither shows."""

    _FRESH_MAX = 32
    _LONG = 256  # longer forms (a bad-input password field) stay out of the tries
    _CACHED, _CACHE_SIZE = 1024, 20_000  # texts up to _CACHED long, that many (20 MB at most)

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._forms: dict[str, str] = {}  # each encoded form -> the kind of its secret
        self._levels: list[tuple[list[str], re.Pattern[str]]] = []  # largest first
        self._fresh: list[str] = []  # forms not yet in a level
        self._long: list[str] = []  # forms too long for the tries
        # Scrubbed texts, each with how many forms it was scrubbed of (served only while that
        # is still all of them, whatever thread added one meanwhile): a document repeats its
        # keys and most values (check ids, verdicts, header names) thousands of times.
        self._done: dict[str, tuple[int, str]] = {}
        self._reach = 0  # the longest form in the tries

    def _note(self, form: str, kind: str) -> None:
        if form in self._forms:
            return
        self._forms[form] = kind
        self._done.clear()
        if len(form) > self._LONG:
            self._long.append(form)
            return
        self._reach = max(self._reach, len(form))
        self._fresh.append(form)
        if len(self._fresh) < self._FRESH_MAX:
            return
        forms, self._fresh = self._fresh, []
        while self._levels and len(self._levels[-1][0]) < 2 * len(forms):
            forms = self._levels.pop()[0] + forms
        self._levels.append((forms, _trie_pattern(forms)))

    def add(self, value: str | None, kind: str = "secret") -> None:
        if not value or _MASK.fullmatch(value):  # a field masked already (redact_url)
            return
        if len(value) >= _MIN_SECRET_LEN and value not in self._values:
            self._values[value] = kind
            for form in {*encodings(value), writable(value)}:  # as stored, too
                self._note(form, kind)

    def add_pair(self, client_id: str, secret: str, kind: str = "client_secret") -> None:
        """A client id and secret as HTTP Basic carries them: base64 of `id:secret`, with
        and without the form-encoding RFC 6749 §2.3.1 asks for (see `basic_auth`)."""
        self.add(secret, kind)
        if not secret or len(secret) < _MIN_SECRET_LEN:
            return
        for pair in (
            f"{quote(client_id, safe='')}:{quote(secret, safe='')}",
            f"{client_id}:{secret}",
        ):
            for form in _base64_forms(pair.encode("utf-8", "surrogatepass")):
                self._note(form, kind)

    def values(self) -> list[str]:
        return list(self._values)

    def _find(
        self, text: str, windows: list[tuple[int, int]] | None = None
    ) -> list[tuple[int, int, str]]:
        """Where each form of each secret is in `text` (the tries' forms only within
        `windows`, if given): (start, end, form)."""
        spans: list[tuple[int, int, str]] = []
        for form in (*self._long, *self._fresh):
            at = text.find(form)
            while at != -1:
                spans.append((at, at + len(form), form))
                at = text.find(form, at + 1)
        for low, high in windows if windows is not None else [(0, len(text))]:
            for _, pattern in self._levels:
                found = pattern.finditer(text, low, high)
                spans.extend((m.start(), m.end(), m.group(0)) for m in found)
        return spans

    def scrub(self, text: str) -> str:
        """`text` with every secret masked, in the text or in any layer decoded from it
        (masked where its encoding is, the text around it kept), and writable."""
        if not self._forms or len(text) < _MIN_SECRET_LEN:
            return writable(text)  # every form is at least as long as its secret
        known = len(self._forms)
        cached = self._done.get(text)
        if cached is not None and cached[0] == known:
            return cached[1]
        done = self._scrub(text)
        if len(text) <= self._CACHED and len(self._done) < self._CACHE_SIZE:
            self._done[text] = (known, done)
        return done

    def _scrub(self, text: str) -> str:
        spans = self._find(text)
        for layer in layers(text):
            for start, end, form in self._find(layer.text, layer.windows(self._reach)):
                spans.append((*layer.origin(start, end), form))
        if not spans:
            return writable(text)
        spans.sort()
        out: list[str] = []
        done = 0
        start, end, form = spans[0]
        for s_start, s_end, s_form in spans[1:]:
            if s_start < end:  # overlapping: one mask, named after the longer form
                if len(s_form) > len(form):
                    form = s_form
                end = max(end, s_end)
                continue
            out += [text[done:start], mask(self._forms[form])]
            done, (start, end, form) = end, (s_start, s_end, s_form)
        out += [text[done:start], mask(self._forms[form]), text[end:]]
        return writable("".join(out))

    def scrub_any(self, value: Any) -> Any:
        """Scrub every string inside a JSON-like structure (header pairs are tuples), keys
        too: a server's JSON may echo a secret, or a lone surrogate, as a key."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub_any(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.scrub_any(v) for v in value)
        if isinstance(value, dict):
            return {self.scrub_any(k): self.scrub_any(v) for k, v in value.items()}
        return value


def redact_json(value: Any, registry: SecretRegistry) -> Any:
    """Mask secret-named fields (remembering their values), then scrub by value."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in SECRET_KEYS and isinstance(item, str):
                registry.add(item, key)
                out[key] = mask(key)
            else:
                out[key] = redact_json(item, registry)
        return out
    if isinstance(value, list):
        return [redact_json(v, registry) for v in value]
    if isinstance(value, str):
        return registry.scrub(value)
    return value


def _redact_pairs(
    pairs: Iterable[tuple[str, str]], registry: SecretRegistry
) -> list[tuple[str, str]]:
    out = []
    for key, value in pairs:
        if key in SECRET_KEYS:
            registry.add(value, key)
            out.append((key, mask(key)))
        else:
            out.append((key, registry.scrub(value)))
    return out


def redact_url(url: str, registry: SecretRegistry) -> str:
    """Secret-named query (and fragment) parameters masked: OAuth codes travel in either.
    Known secrets are scrubbed first: parsing splits an echoed one at its `&` (HTML-escaped,
    say), past finding, and the re-encoding would keep every piece."""
    parts = urlsplit(registry.scrub(url))
    if parts.query:
        pairs = _redact_pairs(parse_qsl(parts.query, keep_blank_values=True), registry)
        query = urlencode(pairs, safe="<>:")
        parts = parts._replace(query=query)
    if "=" in parts.fragment:
        pairs = _redact_pairs(parse_qsl(parts.fragment, keep_blank_values=True), registry)
        parts = parts._replace(fragment=urlencode(pairs, safe="<>:"))
    return registry.scrub(urlunsplit(parts))


def redact_headers(
    headers: Iterable[tuple[str, str]], registry: SecretRegistry
) -> list[tuple[str, str]]:
    out = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in ("cookie", "set-cookie"):
            for part in value.split(";"):
                _, eq, cookie = part.partition("=")
                if eq:
                    registry.add(cookie.strip(), "cookie")
            out.append((name, mask("cookie")))
        elif lowered in SECRET_HEADERS:
            scheme, _, credential = value.strip().partition(" ")
            if credential.strip():
                registry.add(credential.strip(), "access_token")
                out.append((name, f"{scheme} {mask('credential')}"))
            else:  # a bare value: a scheme with no credential, or a credential with no scheme
                bare_scheme = value.isalpha() and len(value) < 16
                if not bare_scheme:
                    registry.add(value, "credential")
                out.append((name, value if bare_scheme else mask("credential")))
        elif lowered in ("location", "content-location"):
            out.append((name, redact_url(value, registry)))
        else:
            out.append((name, registry.scrub(value)))
    return out


def redact_body(
    content: bytes, content_type: str | None, registry: SecretRegistry, cap: int
) -> Any:
    """A storable form of a body: JSON as data, forms as pairs, text scrubbed, all capped."""
    if not content:
        return None
    ctype = (content_type or "").split(";")[0].strip().lower()
    text = content.decode("utf-8", errors="replace")
    json_like = ctype == "application/json" or ctype.endswith("+json") or text[:1] in "{["
    if json_like and not nested_deeper(text):  # (too deep: kept as text, never parsed)
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:
            redacted = redact_json(data, registry)
            rendered = json.dumps(redacted)
            if len(rendered) > cap:
                return {"truncated": True, "size": len(content), "head": rendered[:cap]}
            return redacted
    if ctype == "application/x-www-form-urlencoded":  # scrubbed first, as a URL's query
        pairs = _redact_pairs(parse_qsl(registry.scrub(text), keep_blank_values=True), registry)
        return {"form": [list(p) for p in pairs]}
    scrubbed = registry.scrub(text)
    if len(scrubbed) > cap:
        return {"truncated": True, "size": len(content), "head": scrubbed[:cap]}
    return scrubbed
