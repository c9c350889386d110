"""The Matrix OAuth scope rules: what a client may ask for, and which device a grant names."""

from __future__ import annotations

import re
from dataclasses import dataclass

API_SCOPES = frozenset({"urn:matrix:client:api:*", "urn:matrix:org.matrix.msc2967.client:api:*"})
DEVICE_PREFIXES = ("urn:matrix:client:device:", "urn:matrix:org.matrix.msc2967.client:device:")
ADMIN_SCOPE = "urn:synapse:admin:*"
MAS_ADMIN_SCOPE = "urn:mas:admin"
OPTIONAL_SCOPES = frozenset({"openid", ADMIN_SCOPE})
# RFC 3986 unreserved characters. MAS asks for at least 10; we take any length Synapse takes.
_DEVICE_ID = re.compile(r"^[A-Za-z0-9._~-]{1,255}$")
# A scope token per RFC 6749 §3.3: printable ASCII except space, quote and backslash.
_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


class ScopeError(ValueError):
    """The requested scope breaks a rule; the message says which (ASCII, no quotes)."""


@dataclass(frozen=True)
class Scope:
    tokens: tuple[str, ...]
    device_id: str | None

    def __str__(self) -> str:
        return " ".join(self.tokens)


def device_of(token: str) -> str | None:
    """The device ID a scope token names, if it is a device scope."""
    for prefix in DEVICE_PREFIXES:
        if token.startswith(prefix):
            return token[len(prefix) :]
    return None


def _split(scope: str | None) -> list[str]:
    tokens = list(dict.fromkeys((scope or "").split(" ")))
    tokens = [t for t in tokens if t]
    for token in tokens:
        if not _TOKEN.match(token):
            raise ScopeError("a scope token has characters RFC 6749 does not allow")
    return tokens


def parse_interactive(scope: str | None) -> Scope:
    """Scope for the code and device grants: the C-S API, exactly one device, known extras."""
    tokens = _split(scope)
    devices: list[str] = []
    for token in tokens:
        device = device_of(token)
        if device is not None:
            if not _DEVICE_ID.match(device):
                raise ScopeError("a device ID must be 1 to 255 RFC 3986 unreserved characters")
            devices.append(device)
        elif token not in API_SCOPES and token not in OPTIONAL_SCOPES:
            raise ScopeError(f"unknown scope {token}")
    if len(set(devices)) != 1:
        raise ScopeError("exactly one device scope is required")
    if not API_SCOPES.intersection(tokens):
        raise ScopeError("the client-server API scope is required")
    return Scope(tuple(tokens), devices[0])


def parse_personal(scope: str | None) -> Scope:
    """Scope for an admin-minted personal session: any tokens, at most one device (as MAS)."""
    tokens = _split(scope)
    if not tokens:
        raise ScopeError("the scope is empty")
    devices = {d for d in (device_of(t) for t in tokens) if d is not None}
    if len(devices) > 1:
        raise ScopeError("at most one device scope is allowed")
    device = next(iter(devices), None)
    if device is not None and not _DEVICE_ID.match(device):
        raise ScopeError("a device ID must be 1 to 255 RFC 3986 unreserved characters")
    return Scope(tuple(tokens), device)
