"""Synapse's admin API, for the checks that need an administrator to act on an account:
lock it, suspend it, deactivate it. The only accounts it is ever pointed at are the ones this
run created; anything else is refused before a request is made."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import httpx

from mxconform.errors import HarnessError
from mxconform.http.client import MatrixClient
from mxconform.http.credentials import bearer_header

ADMIN = "/_synapse/admin"


class SynapseAdmin:
    """An administrator's token on one target, bound to the run's own accounts."""

    def __init__(self, token: str, owned: Callable[[str], bool], source: str) -> None:
        self._token = token
        self._owned = owned
        self.source = source  # how the harness came by it: said in the evidence notes

    def __repr__(self) -> str:  # the token stays out of tracebacks
        return f"SynapseAdmin(source={self.source!r})"

    def _user(self, user_id: str) -> str:
        if not self._owned(user_id):
            raise HarnessError(f"the admin API is only used on the run's own accounts: {user_id}")
        return quote(user_id, safe="@:")

    async def set_locked(self, client: MatrixClient, user_id: str, locked: bool) -> None:
        resp = await client.request(
            "PUT",
            f"{ADMIN}/v2/users/{self._user(user_id)}",
            json={"locked": locked},
            credentials=bearer_header(self._token),
            note=f"admin: {'lock' if locked else 'unlock'} the check's account",
        )
        _ok(resp, "locking" if locked else "unlocking")

    async def set_suspended(self, client: MatrixClient, user_id: str, suspended: bool) -> None:
        resp = await client.request(
            "PUT",
            f"{ADMIN}/v1/suspend/{self._user(user_id)}",
            json={"suspend": suspended},
            credentials=bearer_header(self._token),
            note=f"admin: {'suspend' if suspended else 'unsuspend'} the check's account",
        )
        _ok(resp, "suspending" if suspended else "unsuspending")

    async def deactivate(self, client: MatrixClient, user_id: str) -> None:
        resp = await client.request(
            "POST",
            f"{ADMIN}/v1/deactivate/{self._user(user_id)}",
            json={"erase": False},
            credentials=bearer_header(self._token),
            note="admin: deactivate the check's account",
        )
        _ok(resp, "deactivating")


def _ok(resp: httpx.Response, what: str) -> None:
    if resp.status_code != 200:
        raise HarnessError(f"admin API: {what} the account failed with HTTP {resp.status_code}")
