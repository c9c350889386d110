"""Synapse's admin API, for the checks that need an administrator to act on an account:
lock it, suspend it, deactivate it. The only accounts it is ever pointed at are the ones this
run created; anything else is refused before a request is made.

An administrator may exist where this API does not (Dendrite serves Synapse's shared-secret
registration, so the run gets an admin account, but no `/_synapse/admin` user endpoints): an
endpoint the server answers as unknown (404 or 405 `M_UNRECOGNIZED`, the spec's answer to an
unknown endpoint) is a capability it lacks, `Unsupported` (SKIP), never a harness ERROR."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from mxconform.errors import HarnessError, Unsupported
from mxconform.http.client import MatrixClient
from mxconform.http.credentials import bearer_header
from mxconform.spec.matchers import body

ADMIN = "/_synapse/admin"


def _unoffered(resp: httpx.Response, method: str, path: str, what: str) -> None:
    """Unsupported when the server says it has no such endpoint (404/405 M_UNRECOGNIZED)."""
    data = body(resp)
    errcode = data.get("errcode") if isinstance(data, dict) else None
    if resp.status_code in (404, 405) and errcode == "M_UNRECOGNIZED":
        route = path.rsplit("/", 1)[0] + "/{user_id}"  # the same words on every run
        raise Unsupported(
            f"needs admin capability: {what} an account ({method} {route} is not offered by "
            f"this server: HTTP {resp.status_code} M_UNRECOGNIZED)"
        )


class SynapseAdmin:
    """An administrator's token on one target, bound to the run's own accounts."""

    def __init__(
        self, token: str, owned: Callable[[str], bool], source: str, at: str | None = None
    ) -> None:
        self._token = token
        self._at = (at or "").rstrip("/")  # the target's admin_url, else its base URL
        self._owned = owned
        self.source = source  # how the harness came by it: said in the evidence notes

    def __repr__(self) -> str:  # the token stays out of tracebacks
        return f"SynapseAdmin(source={self.source!r})"

    def _user(self, user_id: str) -> str:
        if not self._owned(user_id):
            raise HarnessError(f"the admin API is only used on the run's own accounts: {user_id}")
        return quote(user_id, safe="@:")

    async def set_locked(self, client: MatrixClient, user_id: str, locked: bool) -> None:
        what = "lock" if locked else "unlock"
        path = f"{ADMIN}/v2/users/{self._user(user_id)}"
        await self._call(client, "PUT", path, {"locked": locked}, what)

    async def set_suspended(self, client: MatrixClient, user_id: str, suspended: bool) -> None:
        what = "suspend" if suspended else "unsuspend"
        path = f"{ADMIN}/v1/suspend/{self._user(user_id)}"
        await self._call(client, "PUT", path, {"suspend": suspended}, what)

    async def deactivate(self, client: MatrixClient, user_id: str, erase: bool = False) -> None:
        path = f"{ADMIN}/v1/deactivate/{self._user(user_id)}"
        what = "deactivate and erase" if erase else "deactivate"
        await self._call(client, "POST", path, {"erase": erase}, what)

    async def create_device(self, client: MatrixClient, user_id: str, device_id: str) -> bool:
        """A device of the run's own account, made without a login (Synapse's admin API, from
        1.10x); False where the server has no such endpoint. It has no access token: it is
        there to be listed and deleted."""
        path = f"{ADMIN}/v2/users/{self._user(user_id)}/devices"
        note = "setup: an extra device through the admin API (no login spent)"
        resp = await self._post(client, path, {"device_id": device_id}, note)
        return resp.status_code in (200, 201)

    async def deactivated(self, client: MatrixClient, user_id: str) -> bool | None:
        """Whether the server's own record has the account deactivated (`deactivated` of
        GET /_synapse/admin/v2/users/{user_id}); None where it does not say. A read-back
        that spends no login."""
        resp = await client.request(
            "GET",
            f"{self._at}{ADMIN}/v2/users/{self._user(user_id)}",
            credentials=bearer_header(self._token),
            note="read-back: the account as the admin API has it (no login spent)",
            allow_origins=(self._at,) if self._at else (),
        )
        data = body(resp)
        flag = data.get("deactivated") if isinstance(data, dict) else None
        return flag if resp.status_code == 200 and isinstance(flag, bool) else None

    async def _post(
        self, client: MatrixClient, path: str, payload: Any, note: str
    ) -> httpx.Response:
        return await client.request(
            "POST",
            f"{self._at}{path}",
            json=payload,
            credentials=bearer_header(self._token),
            note=note,
            allow_origins=(self._at,) if self._at else (),
        )

    async def deactivate_if_made(self, client: MatrixClient, user_id: str) -> bool:
        """Deactivate and erase; False when the server has no such account (a ledger names
        accounts before they are asked for: a killed run may never have made it)."""
        path = f"{ADMIN}/v1/deactivate/{self._user(user_id)}"
        note = "cleanup: deactivate and erase through the admin API"
        resp = await self._post(client, path, {"erase": True}, note)
        _unoffered(resp, "POST", path, "deactivate")
        if resp.status_code == 404:
            return False
        if resp.status_code != 200:
            raise HarnessError(f"admin API: deactivation failed with HTTP {resp.status_code}")
        return True

    async def _call(
        self, client: MatrixClient, method: str, path: str, payload: Any, what: str
    ) -> None:
        """One admin request, in the check's evidence; an endpoint the server does not offer
        is a SKIP, anything else but 200 a harness error (the admin step is a precondition,
        never the rule under test)."""
        resp = await client.request(
            method,
            self._at + path,
            json=payload,
            credentials=bearer_header(self._token),
            note=f"admin: {what} the account",
            allow_origins=(self._at,) if self._at else (),
        )
        _unoffered(resp, method, path, what)
        if resp.status_code != 200:
            raise HarnessError(f"admin API: {what} failed with HTTP {resp.status_code}")
