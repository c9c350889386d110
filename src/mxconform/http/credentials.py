"""How a request carries credentials: the two token transports, and raw probes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Credentials:
    """How (and whether) a request carries credentials."""

    headers: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    label: str = "none"

    def __add__(self, other: Credentials) -> Credentials:
        return Credentials(
            self.headers + other.headers, self.params + other.params, f"{self.label}+{other.label}"
        )


NO_CREDENTIALS = Credentials()


def bearer_header(token: str) -> Credentials:
    return Credentials(headers=(("Authorization", f"Bearer {token}"),), label="header")


def query_param(token: str) -> Credentials:
    return Credentials(params=(("access_token", token),), label="query")


def authorization_value(value: str, label: str) -> Credentials:
    """A raw Authorization header, for probing what the spec leaves open."""
    return Credentials(headers=(("Authorization", value),), label=label)


class Transport(Enum):
    """The two ways the Client-Server API lets a client present an access token."""

    HEADER = "header"
    QUERY = "query"

    def credentials(self, token: str) -> Credentials:
        return bearer_header(token) if self is Transport.HEADER else query_param(token)

    @property
    def requirement(self) -> str:
        """The catalogue rule that makes this transport mandatory."""
        return "TOKEN-BEARER-1" if self is Transport.HEADER else "TOKEN-QUERY-LEGACY"
