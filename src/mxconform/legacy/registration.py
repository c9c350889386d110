"""How the harness registers its test users: the UIA dance on `/register` (open or with a
registration token) and Synapse's shared-secret admin registration (nonce and HMAC)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from mxconform.errors import HarnessError
from mxconform.http.client import MatrixClient
from mxconform.legacy.api import CLIENT_V3, Session
from mxconform.spec.matchers import body
from mxconform.targets.probes import SHARED_SECRET_PATH


def session_from(data: Any, password: str, what: str) -> Session:
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("user_id", "access_token", "device_id")
    ):
        raise HarnessError(f"{what}: response lacks user_id/access_token/device_id")
    return Session(data["user_id"], data["access_token"], data["device_id"], password)


async def register_uia(
    client: MatrixClient, username: str, password: str, token: str | None
) -> Session:
    """The full UIA dance on /register: a flow of dummy (and, given a token,
    registration-token) stages, completed in order."""
    supported = {"m.login.dummy"} | ({"m.login.registration_token"} if token else set())
    request: dict[str, Any] = {
        "username": username,
        "password": password,
        "initial_device_display_name": "mxconform",
    }
    resp = await client.request(
        "POST", f"{CLIENT_V3}/register", json=request, note="provisioning: UIA challenge"
    )
    challenge = body(resp)
    if resp.status_code != 401 or not isinstance(challenge, dict):
        raise HarnessError(f"registration: expected a 401 UIA challenge, got {resp.status_code}")
    flows = [f.get("stages") for f in challenge.get("flows", []) if isinstance(f, dict)]
    usable = [f for f in flows if isinstance(f, list) and f and set(f) <= supported]
    if not usable:
        raise HarnessError(
            f"registration: no flow the harness can complete (flows: {flows}); "
            "use another provisioning method"
        )
    session = challenge.get("session")
    for stage in usable[0]:
        auth: dict[str, Any] = {"type": stage}
        if session is not None:
            auth["session"] = session
        if stage == "m.login.registration_token":
            auth["token"] = token
        request["auth"] = auth
        resp = await client.request(
            "POST", f"{CLIENT_V3}/register", json=request, note=f"provisioning: {stage} stage"
        )
        if resp.status_code == 200:
            return session_from(body(resp), password, "registration")
        if resp.status_code != 401:
            raise HarnessError(f"registration: stage {stage} failed with {resp.status_code}")
    raise HarnessError("registration: every stage done but no account was returned")


def shared_secret_mac(secret: str, nonce: str, username: str, password: str, admin: bool) -> str:
    """Synapse's registration MAC: HMAC-SHA1 over NUL-separated fields."""
    fields = [nonce, username, password, "admin" if admin else "notadmin"]
    mac = hmac.new(secret.encode(), "\x00".join(fields).encode(), hashlib.sha1)
    return mac.hexdigest()


async def register_shared_secret(
    client: MatrixClient,
    secret: str,
    username: str,
    password: str,
    admin: bool = False,
    at: str | None = None,
) -> Session:
    """Synapse's admin registration, at the target's `admin_url` when it has one (the admin
    API is often kept off the public listener)."""
    path = f"{(at or '').rstrip('/')}{SHARED_SECRET_PATH}"
    where = (at,) if at else ()
    nonce_resp = await client.request(
        "GET", path, note="provisioning: shared-secret nonce", allow_origins=where
    )
    nonce = (body(nonce_resp) or {}).get("nonce")
    if nonce_resp.status_code != 200 or not isinstance(nonce, str):
        raise HarnessError(f"synapse-shared-secret: no nonce (HTTP {nonce_resp.status_code})")
    payload = {
        "nonce": nonce,
        "username": username,
        "password": password,
        "admin": admin,
        "mac": shared_secret_mac(secret, nonce, username, password, admin),
    }
    done = await client.request(
        "POST",
        path,
        json=payload,
        note="provisioning: shared-secret registration",
        allow_origins=where,
    )
    if done.status_code != 200:
        raise HarnessError(f"synapse-shared-secret: registration failed with {done.status_code}")
    return session_from(body(done), password, "synapse-shared-secret")
