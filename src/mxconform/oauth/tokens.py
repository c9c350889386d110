"""Every OAuth token the run was issued, so that each can be revoked when it ends.

A token a check obtained by itself (a refresh rotation, a device grant, a code exchanged
twice) is as live as a login's, and a leaked log line would carry it. So the token endpoint's
answers are noted as they come (`OAuthApi` notes them here), grouped by grant (a refresh
joins the grant of the token it spent); `revocation` revokes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class Grant:
    """The token pairs one grant gave, oldest first (each refresh adds one)."""

    client_id: str | None
    pairs: list[tuple[str | None, str]] = field(default_factory=list, repr=False)

    def newest_first(self) -> list[tuple[str, str]]:
        """(token, type hint) in revocation order: a refresh token ends its session."""
        order: list[tuple[str, str]] = []
        for refresh, access in reversed(self.pairs):
            if refresh is not None:
                order.append((refresh, "refresh_token"))
            order.append((access, "access_token"))
        return order


class IssuedTokens:
    """The token pairs a target's token endpoint gave this run; never the operator's
    (servers.yaml `oauth.tokens`), nor what a refresh of those gave: that session is theirs."""

    def __init__(self) -> None:
        self.grants: list[Grant] = []
        self._by_refresh: dict[str, Grant] = {}
        self._spared: set[str] = set()

    def spare(self, *tokens: str | None) -> None:
        self._spared.update(t for t in tokens if t)

    def note(self, params: Mapping[str, str], access: str, refresh: str | None) -> None:
        """A token endpoint's answer to a request with these `params`."""
        spent = params.get("refresh_token")
        if spent is not None and spent in self._spared:
            self.spare(access, refresh)
            return
        grant = self._by_refresh.get(spent) if spent is not None else None
        if grant is None:
            grant = Grant(params.get("client_id"))
            self.grants.append(grant)
        grant.pairs.append((refresh, access))
        if refresh is not None:
            self._by_refresh[refresh] = grant
