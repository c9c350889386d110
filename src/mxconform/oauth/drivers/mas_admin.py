"""The `mas-admin` login driver and the part of MAS's admin API the harness uses."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from mxconform.errors import HarnessError
from mxconform.http.client import MatrixClient
from mxconform.http.limits import origin
from mxconform.oauth.client import basic_auth
from mxconform.oauth.drivers.base import DRIVER_GRANTS, DriverError, LoginDriver
from mxconform.spec.matchers import body
from mxconform.targets.lifecycle import AdminAccess

_DISCOVERY = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")


class MasAdminApi:
    """The part of MAS's admin API the harness uses (client credentials → `urn:mas:admin`).

    The client secret belongs to `access.url`: its token endpoint comes from that server's
    own metadata, never from the target's, and must share its origin."""

    def __init__(self, access: AdminAccess) -> None:
        self.access = access
        self.origin = origin(access.url)
        self.token_endpoint: str | None = None
        self._token: str | None = None
        self._token_lock = asyncio.Lock()  # concurrent cleanup asks for one token, not many
        self.base = access.url.rstrip("/") + "/api/admin/v1"

    async def _discover(self, client: MatrixClient) -> str:
        """The admin server's token endpoint, from its own metadata, on its own origin."""
        if self.token_endpoint is None:
            root = self.access.url.rstrip("/")
            found = None
            for path in _DISCOVERY:
                resp = await client.request(
                    "GET", root + path, note="admin API: the admin server's own metadata"
                )
                data = body(resp) if resp.status_code == 200 else None
                if isinstance(data, dict) and isinstance(data.get("token_endpoint"), str):
                    found = data["token_endpoint"]
                    break
            if found is None:
                raise DriverError(f"no token_endpoint in the metadata of {root}")
            if origin(found) != self.origin:
                raise HarnessError(
                    f"the admin client secret is for {self.origin}; the token endpoint "
                    f"{origin(found)} its metadata names is elsewhere, so it is not sent"
                )
            self.token_endpoint = found
        return self.token_endpoint

    async def _auth(self, client: MatrixClient) -> dict[str, str]:
        async with self._token_lock:
            return await self._auth_locked(client)

    async def _auth_locked(self, client: MatrixClient) -> dict[str, str]:
        if self._token is None:
            resp = await client.request(
                "POST",
                await self._discover(client),
                form={"grant_type": "client_credentials", "scope": "urn:mas:admin"},
                credentials=basic_auth(self.access.client_id, self.access.client_secret),
                note="admin API: client credentials for urn:mas:admin",
                allow_origins=(self.origin,),
            )
            token = (body(resp) or {}).get("access_token")
            if resp.status_code != 200 or not isinstance(token, str):
                raise DriverError(f"admin token refused: HTTP {resp.status_code}")
            self._token = token
        return {"Authorization": f"Bearer {self._token}"}

    async def _call(
        self, client: MatrixClient, method: str, path: str, payload: Any, note: str
    ) -> httpx.Response:
        for fresh_token in (False, True):
            if fresh_token:
                self._token = None  # the admin token expired: one fresh one
            resp = await client.request(
                method,
                self.base + path,
                json=payload,
                headers=await self._auth(client),
                note=note,
                allow_origins=(self.origin,),
            )
            if resp.status_code != 401:
                break
        return resp

    async def create_user(self, client: MatrixClient, username: str, password: str) -> str:
        resp = await self._call(
            client, "POST", "/users", {"username": username}, "admin API: create a test user"
        )
        user_id = ((body(resp) or {}).get("data") or {}).get("id")
        if resp.status_code not in (200, 201) or not isinstance(user_id, str):
            raise DriverError(f"admin API: creating {username} failed: HTTP {resp.status_code}")
        done = await self._call(
            client,
            "POST",
            f"/users/{user_id}/set-password",
            {"password": password, "skip_password_check": True},
            "admin API: set the test user's password",
        )
        if done.status_code not in (200, 204):
            raise DriverError(f"admin API: set-password failed: HTTP {done.status_code}")
        return user_id

    async def find_user(self, client: MatrixClient, username: str) -> str | None:
        resp = await self._call(
            client, "GET", f"/users/by-username/{username}", None, "admin API: find a user"
        )
        found = ((body(resp) or {}).get("data") or {}).get("id")
        return found if resp.status_code == 200 and isinstance(found, str) else None

    async def personal_session(
        self, client: MatrixClient, admin_id: str, scope: str, name: str
    ) -> tuple[str, str]:
        resp = await self._call(
            client,
            "POST",
            "/personal-sessions",
            {"actor_user_id": admin_id, "human_name": name, "scope": scope},
            "admin API: mint a personal session token",
        )
        data = (body(resp) or {}).get("data") or {}
        token = (data.get("attributes") or {}).get("access_token")
        if resp.status_code not in (200, 201) or not isinstance(token, str):
            raise DriverError(f"admin API: personal session refused: HTTP {resp.status_code}")
        return str(data.get("id")), token

    async def revoke_personal_session(self, client: MatrixClient, session_id: str) -> bool:
        resp = await self._call(
            client,
            "POST",
            f"/personal-sessions/{session_id}/revoke",
            None,
            "cleanup: revoke a personal session",
        )
        return resp.status_code in (200, 204)

    async def deactivate(self, client: MatrixClient, admin_id: str) -> bool:
        resp = await self._call(
            client, "POST", f"/users/{admin_id}/deactivate", None, "cleanup: deactivate"
        )
        return resp.status_code in (200, 204)


class MasAdminDriver(LoginDriver):
    """Tokens minted as MAS personal sessions: no pages, so no consent and no code grant."""

    name = "mas-admin"
    grant = DRIVER_GRANTS["mas-admin"]
