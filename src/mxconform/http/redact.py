"""Redaction: no token, password or secret the harness handles may reach a file.

Two layers. Structural: known secret fields (JSON keys, form fields, query parameters, headers)
are masked wherever they appear, and their values are remembered. By value: every remembered
secret is then scrubbed from any text that is stored (URLs, messages, logs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Keys whose values are secrets wherever they appear (JSON bodies, forms, query strings).
SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
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


def mask(kind: str) -> str:
    return f"<redacted:{kind}>"


class SecretRegistry:
    """Every secret value seen in this run, kept in memory only, for scrubbing by value."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str | None, kind: str = "secret") -> None:
        if value and len(value) >= _MIN_SECRET_LEN and value not in self._values:
            self._values[value] = kind
            self._pattern = None

    def values(self) -> list[str]:
        return list(self._values)

    def scrub(self, text: str) -> str:
        if not self._values:
            return text
        if self._pattern is None:
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
        return self._pattern.sub(lambda m: mask(self._values[m.group(0)]), text)

    def scrub_any(self, value: Any) -> Any:
        """Scrub every string inside a JSON-like structure."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub_any(v) for v in value]
        if isinstance(value, dict):
            return {k: self.scrub_any(v) for k, v in value.items()}
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
    """Secret-named query (and fragment) parameters masked: OAuth codes travel in either."""
    parts = urlsplit(url)
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
    if ctype == "application/json" or ctype.endswith("+json") or text[:1] in "{[":
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
    if ctype == "application/x-www-form-urlencoded":
        pairs = _redact_pairs(parse_qsl(text, keep_blank_values=True), registry)
        return {"form": [list(p) for p in pairs]}
    scrubbed = registry.scrub(text)
    if len(scrubbed) > cap:
        return {"truncated": True, "size": len(content), "head": scrubbed[:cap]}
    return scrubbed
