"""The end of the run's OAuth sessions: every token it was issued revoked, every personal
session ended, and how long a revoked token may still be accepted.

Revocation goes only to a revocation endpoint on an origin servers.yaml names; otherwise
nothing is sent and the tokens are listed as left live (a housekeeping problem).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from mxconform.errors import HarnessError
from mxconform.http.client import MatrixClient
from mxconform.http.credentials import bearer_header
from mxconform.http.limits import origin
from mxconform.legacy import api as legacy
from mxconform.legacy.housekeeping import Housekeeping
from mxconform.oauth.drivers.mas_admin import MasAdminApi
from mxconform.oauth.tokens import Grant, IssuedTokens

# Revokes one token (client_id, token, type hint): the HTTP status it got.
Revoker = Callable[[str | None, str, str], Awaitable[int]]


async def revoke_issued(
    issued: IssuedTokens,
    revoke: Revoker,
    endpoint: str | None,
    allowed: frozenset[str],
    housekeeping: Housekeeping,
    gate: asyncio.Semaphore,
) -> None:
    """Revoke every grant's tokens (a grant counts as a device logged out when all its
    revocations answer 200); with no revocation endpoint on an allowed origin, send nothing
    and say how many were left live."""
    grants = [g for g in issued.grants if g.pairs]
    if not grants:
        return
    if endpoint is None or origin(endpoint) not in allowed:
        left = sum(len(g.newest_first()) for g in grants)
        where = (
            "the server metadata names no revocation_endpoint"
            if endpoint is None
            else f"the revocation endpoint is on {origin(endpoint)}, which servers.yaml does "
            f"not name ({', '.join(sorted(allowed))}): nothing was sent there"
        )
        housekeeping.problems.append(f"{left} OAuth tokens of the run left live: {where}")
        return

    async def one(grant: Grant) -> None:
        async with gate:
            try:
                statuses = [
                    await revoke(grant.client_id, token, hint)
                    for token, hint in grant.newest_first()
                ]
            except HarnessError as exc:
                housekeeping.problems.append(f"revoking a grant's tokens: {exc}")
                return
            if all(status == 200 for status in statuses):
                housekeeping.devices_logged_out += 1
            else:
                housekeeping.problems.append(
                    f"revoking a grant's tokens answered HTTP {sorted(set(statuses))}"
                )

    await asyncio.gather(*(one(grant) for grant in grants))


async def end_personal_sessions(
    admin: MasAdminApi,
    client: MatrixClient,
    session_ids: list[str],
    housekeeping: Housekeeping,
    gate: asyncio.Semaphore,
) -> None:
    """Revoke the personal sessions the run minted (the `mas-admin` driver's logins)."""

    async def one(session_id: str) -> None:
        async with gate:
            try:
                if await admin.revoke_personal_session(client, session_id):
                    housekeeping.devices_logged_out += 1
                else:
                    housekeeping.problems.append("revoking a personal session was refused")
            except HarnessError as exc:
                housekeeping.problems.append(f"revoking a personal session: {exc}")

    await asyncio.gather(*(one(session_id) for session_id in session_ids))


async def refusal_delay(
    client: MatrixClient, token: str, grace_s: float, step_s: float = 0.5
) -> tuple[float | None, int]:
    """Poll whoami with a revoked token until the homeserver refuses it (it may cache
    introspection): seconds until the first 401, or None if still accepted after the grace."""
    started = time.monotonic()
    while True:
        resp = await legacy.whoami(
            client, bearer_header(token), "is the revoked token still accepted?"
        )
        elapsed = time.monotonic() - started
        if resp.status_code == 401:
            return elapsed, resp.status_code
        if elapsed >= grace_s:
            return None, resp.status_code
        await asyncio.sleep(step_s)
