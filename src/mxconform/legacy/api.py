"""The legacy Client-Server auth API as typed calls, so suites read like the rules they check.

Each call returns the raw response (checks assert on it); nothing here decides a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from mxconform.http.client import MatrixClient
from mxconform.http.credentials import NO_CREDENTIALS, Credentials, bearer_header

CLIENT_V3 = "/_matrix/client/v3"

IdentifierStyle = Literal["identifier", "user-field"]


@dataclass
class Session:
    """One logged-in device of a test user."""

    user_id: str
    access_token: str = field(repr=False)  # secrets never reach a repr (tracebacks)
    device_id: str
    password: str = field(repr=False)

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]


def stage_auth(stage: str, session: str | None) -> dict[str, Any]:
    """A UIA stage with no extra fields (e.g. m.login.dummy), echoing the session if any."""
    return {"type": stage, **({"session": session} if session is not None else {})}


def dummy_stage(challenge: httpx.Response) -> dict[str, Any] | None:
    """The `auth` that completes a /register UIA challenge offering a flow of the dummy stage
    alone (its session echoed); None when the answer offers no such flow."""
    try:
        data = challenge.json()
    except ValueError:
        return None
    if challenge.status_code != 401 or not isinstance(data, dict):
        return None
    flows = data.get("flows")
    if not isinstance(flows, list) or not any(
        isinstance(f, dict) and f.get("stages") == ["m.login.dummy"] for f in flows
    ):
        return None
    session = data.get("session")
    return stage_auth("m.login.dummy", session if isinstance(session, str) else None)


def password_auth(user_id: str, password: str, session: str | None) -> dict[str, Any]:
    """An `m.login.password` UIA stage in the identifier form."""
    auth: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
    }
    if session is not None:
        auth["session"] = session
    return auth


async def login_flows(client: MatrixClient) -> httpx.Response:
    return await client.request("GET", f"{CLIENT_V3}/login")


async def login_password(
    client: MatrixClient,
    user: str,
    password: str,
    *,
    style: IdentifierStyle = "identifier",
    device_id: str | None = None,
    display_name: str | None = None,
    refresh_token: bool = False,
) -> httpx.Response:
    body: dict[str, Any] = {"type": "m.login.password", "password": password}
    if style == "identifier":
        body["identifier"] = {"type": "m.id.user", "user": user}
    else:
        body["user"] = user  # the deprecated top-level field
    if device_id is not None:
        body["device_id"] = device_id
    if display_name is not None:
        body["initial_device_display_name"] = display_name
    if refresh_token:
        body["refresh_token"] = True
    return await client.request("POST", f"{CLIENT_V3}/login", json=body)


async def login_token(client: MatrixClient, token: str) -> httpx.Response:
    return await client.request(
        "POST", f"{CLIENT_V3}/login", json={"type": "m.login.token", "token": token}
    )


async def register(
    client: MatrixClient, body: dict[str, Any], *, kind: str | None = None
) -> httpx.Response:
    params = {"kind": kind} if kind else None
    return await client.request("POST", f"{CLIENT_V3}/register", json=body, params=params)


async def register_available(client: MatrixClient, username: str) -> httpx.Response:
    return await client.request(
        "GET", f"{CLIENT_V3}/register/available", params={"username": username}
    )


async def refresh(client: MatrixClient, refresh_token: str) -> httpx.Response:
    return await client.request(
        "POST", f"{CLIENT_V3}/refresh", json={"refresh_token": refresh_token}
    )


async def whoami(
    client: MatrixClient, credentials: Credentials, note: str | None = None
) -> httpx.Response:
    return await client.request(
        "GET", f"{CLIENT_V3}/account/whoami", credentials=credentials, note=note
    )


async def devices(client: MatrixClient, credentials: Credentials) -> httpx.Response:
    return await client.request("GET", f"{CLIENT_V3}/devices", credentials=credentials)


async def logout(client: MatrixClient, credentials: Credentials) -> httpx.Response:
    return await client.request("POST", f"{CLIENT_V3}/logout", json={}, credentials=credentials)


async def logout_all(client: MatrixClient, credentials: Credentials) -> httpx.Response:
    return await client.request("POST", f"{CLIENT_V3}/logout/all", json={}, credentials=credentials)


async def delete_devices(
    client: MatrixClient,
    credentials: Credentials,
    devices: list[str],
    auth: dict[str, Any] | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"devices": devices}
    if auth is not None:
        body["auth"] = auth
    return await client.request(
        "POST", f"{CLIENT_V3}/delete_devices", json=body, credentials=credentials
    )


async def delete_device(
    client: MatrixClient, credentials: Credentials, device: str, auth: dict[str, Any] | None
) -> httpx.Response:
    body = {"auth": auth} if auth is not None else {}
    return await client.request(
        "DELETE", f"{CLIENT_V3}/devices/{device}", json=body, credentials=credentials
    )


async def fallback_page(client: MatrixClient, stage: str, session: str) -> httpx.Response:
    return await client.request(
        "GET", f"{CLIENT_V3}/auth/{stage}/fallback/web", params={"session": session}
    )


def device_ids(resp: httpx.Response) -> set[str]:
    """The device ids a GET /devices answer lists (empty when it is not a device list)."""
    try:
        data = resp.json()
    except ValueError:
        return set()
    items = data.get("devices", []) if isinstance(data, dict) else []
    return {d["device_id"] for d in items if isinstance(d, dict) and "device_id" in d}


def session_of(resp: httpx.Response) -> Session | None:
    """The session a successful login or registration answer describes, if complete."""
    try:
        data = resp.json()
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if not all(isinstance(data.get(k), str) for k in ("user_id", "access_token", "device_id")):
        return None
    return Session(data["user_id"], data["access_token"], data["device_id"], "")


def bearer_of(resp: httpx.Response) -> Credentials:
    """Header credentials for the access token a login or registration answer carries."""
    session = session_of(resp)
    return bearer_header(session.access_token) if session else NO_CREDENTIALS


_HARMLESS_BODIES: dict[str, dict[str, Any]] = {
    # Bodies that cannot create or change anything even if the server accepts them.
    "login": {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "mxconform-nobody"},
        "password": "mxconform-not-a-password",
    },
    "register": {},
    "refresh": {"refresh_token": "mxconform-not-a-refresh-token"},
    "logout": {},
}


async def post_endpoint(
    client: MatrixClient, endpoint: str, credentials: Credentials
) -> httpx.Response:
    """POST a legacy endpoint with a harmless body, to record how the server answers."""
    return await client.request(
        "POST",
        f"{CLIENT_V3}/{endpoint}",
        json=_HARMLESS_BODIES[endpoint],
        credentials=credentials,
    )
