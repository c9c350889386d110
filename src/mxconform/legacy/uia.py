"""The eight UIA operations, each with what it needs set up and how to read its effect back.

A UIA check must prove two things by a follow-up read, not by the status code alone: a
refused request changed nothing, and a completed one did what it says. Each operation here
prepares a fresh subject (a user of the check alone, a second device, uploaded keys), builds
its request, and knows the read that shows whether the operation took effect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from mxconform.errors import PreconditionFailed
from mxconform.http.client import MatrixClient
from mxconform.http.credentials import NO_CREDENTIALS, Credentials, Transport, bearer_header
from mxconform.legacy import api as legacy
from mxconform.legacy.api import CLIENT_V3, Session
from mxconform.legacy.devices import extra_device
from mxconform.legacy.readback import password_taken, uia_takes_password
from mxconform.legacy.users import LegacyUsers
from mxconform.spec.matchers import body


@dataclass
class Prepared:
    """One UIA request ready to send, and the read-back that tells whether it took effect."""

    method: str
    path: str
    body: dict[str, Any]
    credentials: Credentials
    user: Session | None
    took_effect: Callable[[], Awaitable[tuple[bool, str]]]
    effect_unobservable: str | None = None
    unsupported: str | None = None  # the server declares it does not offer this operation
    # Why the spec lets a server go without this endpoint at all (None: it may not): then
    # the server's "unknown endpoint" answer is a SKIP, not a failed challenge.
    optional: str | None = None

    def not_offered(self, resp: httpx.Response) -> str | None:
        """The SKIP reason when an optional endpoint is answered as unknown (404 or 405
        M_UNRECOGNIZED, as the spec has servers answer an endpoint they do not implement)."""
        data = body(resp)
        errcode = data.get("errcode") if isinstance(data, dict) else None
        if self.optional is None or resp.status_code not in (404, 405):
            return None
        if errcode != "M_UNRECOGNIZED":
            return None
        return (
            f"the server does not offer {self.method} {self.path} (HTTP {resp.status_code} "
            f"M_UNRECOGNIZED); {self.optional}"
        )

    async def send(self, client: MatrixClient, auth: dict[str, Any] | None) -> httpx.Response:
        payload = dict(self.body)
        if auth is not None:
            payload["auth"] = auth
        return await client.request(
            self.method, self.path, json=payload, credentials=self.credentials
        )


Preparer = Callable[[MatrixClient, LegacyUsers, Transport], Awaitable[Prepared]]


@dataclass(frozen=True)
class UiaOperation:
    id: str
    requirement: str
    password_stage: bool  # whether the flows should offer m.login.password to this user
    prepare: Preparer
    destructive: bool = False  # changes or destroys the account: never on given accounts

    def __str__(self) -> str:
        return self.id


async def _user_with_second_device(
    client: MatrixClient,
    users: LegacyUsers,
) -> tuple[Session, Session]:
    user = await users.create(client, "uia")
    return user, await extra_device(client, users, user)


def _device_gone(
    client: MatrixClient,
    user: Session,
    other: Session,
) -> Callable[[], Awaitable[tuple[bool, str]]]:
    """The device is no longer listed, and its token (when it had one: a device the admin
    API made has none) is refused."""

    async def read() -> tuple[bool, str]:
        listed = await legacy.devices(client, bearer_header(user.access_token))
        still = other.device_id in legacy.device_ids(listed)
        if not other.access_token:
            return not still, f"device {other.device_id} listed: {still}"
        who = await legacy.whoami(client, bearer_header(other.access_token))
        gone = not still and who.status_code == 401
        return gone, (
            f"device {other.device_id} listed: {still}; its token answers HTTP {who.status_code}"
        )

    return read


async def _delete_device(client: MatrixClient, users: LegacyUsers, t: Transport) -> Prepared:
    user, other = await _user_with_second_device(client, users)
    return Prepared(
        "DELETE",
        f"{CLIENT_V3}/devices/{other.device_id}",
        {},
        t.credentials(user.access_token),
        user,
        _device_gone(client, user, other),
    )


async def _delete_devices(client: MatrixClient, users: LegacyUsers, t: Transport) -> Prepared:
    user, other = await _user_with_second_device(client, users)
    return Prepared(
        "POST",
        f"{CLIENT_V3}/delete_devices",
        {"devices": [other.device_id]},
        t.credentials(user.access_token),
        user,
        _device_gone(client, user, other),
    )


async def _change_password(client: MatrixClient, users: LegacyUsers, t: Transport) -> Prepared:
    return await password_change(client, users, t, users.new_password())


async def password_change(
    client: MatrixClient, users: LegacyUsers, t: Transport, new_password: str
) -> Prepared:
    """A password change of a fresh account of the check's own to `new_password`, read back
    through UIA (the new password taken, the old one not), no login spent."""
    user = await users.create(client, "uia")
    users.password_may_change(user.user_id, new_password)

    async def read() -> tuple[bool, str]:
        new, new_seen = await password_taken(client, user, new_password)
        old, old_seen = await password_taken(client, user, user.password)
        if new is None or old is None:
            raise PreconditionFailed(
                f"precondition failed: reading back the password: new {new_seen}; old {old_seen}"
            )
        if new:
            users.password_changed(user.user_id, new_password)
        return new and not old, f"the new password: {new_seen}; the old one: {old_seen}"

    return Prepared(
        "POST",
        f"{CLIENT_V3}/account/password",
        {"new_password": new_password, "logout_devices": False},
        t.credentials(user.access_token),
        user,
        read,
    )


async def _deactivate(client: MatrixClient, users: LegacyUsers, t: Transport) -> Prepared:
    user = await users.create(client, "uia")
    users.deactivation_may_happen(user.user_id)

    async def read() -> tuple[bool, str]:
        """Still active when its token's UIA takes its password; else (the token refused,
        as deactivation ends every token) the admin API's record says, where the run has
        one, or a login: 403 for a deactivated account."""
        active, seen = await uia_takes_password(client, user, user.password)
        if active:
            return False, f"the account's token and password still work ({seen})"
        admin = await users.admin(client)
        recorded = await admin.deactivated(client, user.user_id) if admin else None
        if recorded is not None:
            if recorded:
                users.deactivated(user.user_id)
            return recorded, f"{seen}; the admin API has it deactivated: {recorded}"
        login = await legacy.login_password(client, user.user_id, user.password)
        gone = login.status_code == 403
        if gone:
            users.deactivated(user.user_id)
        return gone, f"{seen}; a login afterwards: HTTP {login.status_code}"

    return Prepared(
        "POST", f"{CLIENT_V3}/account/deactivate", {}, t.credentials(user.access_token), user, read
    )


async def _add_3pid(client: MatrixClient, users: LegacyUsers, t: Transport) -> Prepared:
    user = await users.create(client, "uia")

    async def read() -> tuple[bool, str]:
        return await threepids_added(client, user.access_token)

    return Prepared(
        "POST",
        f"{CLIENT_V3}/account/3pid/add",
        {"client_secret": "mxconformSecret1", "sid": "mxconform-no-such-session"},
        t.credentials(user.access_token),
        user,
        read,
        effect_unobservable="adding an address needs an e-mail validation the "
        "harness cannot perform",
        optional="third-party identifiers are optional: a homeserver 'may' keep contact "
        "information (Adding Account Administrative Contact Information)",
    )


async def threepids_added(client: MatrixClient, token: str) -> tuple[bool, str]:
    """The read-back of add-3pid: whether the account lists any third-party identifier."""
    listed = await client.request(
        "GET", f"{CLIENT_V3}/account/3pid", credentials=bearer_header(token)
    )
    threepids = (body(listed) or {}).get("threepids", [])
    return bool(threepids), f"third-party identifiers listed: {len(threepids)}"


async def _get_login_token(client: MatrixClient, users: LegacyUsers, t: Transport) -> Prepared:
    user = await users.create(client, "uia")
    caps = await client.request(
        "GET", f"{CLIENT_V3}/capabilities", credentials=bearer_header(user.access_token)
    )
    enabled = (body(caps) or {}).get("capabilities", {}).get("m.get_login_token", {})
    unsupported = None
    if not (isinstance(enabled, dict) and enabled.get("enabled") is True):
        unsupported = "the server does not advertise m.get_login_token (absent means not allowed)"
    return Prepared(
        "POST",
        "/_matrix/client/v1/login/get_token",
        {},
        t.credentials(user.access_token),
        user,
        _never,
        unsupported=unsupported,
    )


async def _never() -> tuple[bool, str]:
    return False, "no state to read back: the answer itself carries the token"


def cross_signing_keys(user_id: str) -> dict[str, Any]:
    """A fresh, correctly signed set of cross-signing keys (ed25519 via signedjson/PyNaCl)."""
    master = generate_signing_key("m")
    master_pub = encode_verify_key_base64(get_verify_key(master))
    master.version = master_pub  # key ids are the public keys themselves

    def subkey(usage: str) -> dict[str, Any]:
        key = generate_signing_key("s")
        pub = encode_verify_key_base64(get_verify_key(key))
        data = {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{pub}": pub}}
        signed: dict[str, Any] = sign_json(data, user_id, master)
        return signed

    return {
        "master_key": {
            "user_id": user_id,
            "usage": ["master"],
            "keys": {f"ed25519:{master_pub}": master_pub},
        },
        "self_signing_key": subkey("self_signing"),
        "user_signing_key": subkey("user_signing"),
    }


def master_key_id(keys: dict[str, Any]) -> str:
    key_ids: dict[str, str] = keys["master_key"]["keys"]
    return next(iter(key_ids))


async def upload_cross_signing(
    client: MatrixClient, user: Session, keys: dict[str, Any], auth: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.request(
        "POST",
        f"{CLIENT_V3}/keys/device_signing/upload",
        json=keys if auth is None else {**keys, "auth": auth},
        credentials=bearer_header(user.access_token),
    )


async def stored_master_key(client: MatrixClient, user: Session) -> str | None:
    resp = await client.request(
        "POST",
        f"{CLIENT_V3}/keys/query",
        json={"device_keys": {user.user_id: []}},
        credentials=bearer_header(user.access_token),
    )
    master = (body(resp) or {}).get("master_keys", {}).get(user.user_id, {})
    return next(iter(master.get("keys", {})), None)


async def upload_first_keys(client: MatrixClient, user: Session, keys: dict[str, Any]) -> None:
    """A first set of cross-signing keys, as the server's spec version allows: without UIA
    (v1.11 on), else through the password stage (before v1.11 every upload needed UIA).
    Anything else is a failed precondition of the check, not a verdict on it."""
    resp = await upload_cross_signing(client, user, keys)
    if resp.status_code == 401 and user.password:
        session = (body(resp) or {}).get("session")
        auth = legacy.password_auth(user.user_id, user.password, session)
        resp = await upload_cross_signing(client, user, keys, auth)
    if resp.status_code != 200:
        raise PreconditionFailed(
            "precondition failed: the first cross-signing key upload answered "
            f"HTTP {resp.status_code} {(body(resp) or {}).get('errcode') or ''}".rstrip()
        )


async def _replace_cross_signing(
    client: MatrixClient, users: LegacyUsers, t: Transport
) -> Prepared:
    user = await users.create(client, "uia")
    await upload_first_keys(client, user, cross_signing_keys(user.user_id))
    replacement = cross_signing_keys(user.user_id)

    async def read() -> tuple[bool, str]:
        stored = await stored_master_key(client, user)
        return stored == master_key_id(replacement), f"stored master key {stored}"

    return Prepared(
        "POST",
        f"{CLIENT_V3}/keys/device_signing/upload",
        replacement,
        t.credentials(user.access_token),
        user,
        read,
    )


async def _register(client: MatrixClient, users: LegacyUsers, t: Transport) -> Prepared:
    name, password = users.registration("uia-reg")

    async def read() -> tuple[bool, str]:
        available = await legacy.register_available(client, name)
        taken = available.status_code == 400
        if taken:
            users.adopt(f"@{name}:{users.server_name}", password)
        return taken, f"/register/available for the name: HTTP {available.status_code}"

    return Prepared(
        "POST",
        f"{CLIENT_V3}/register",
        {"username": name, "password": password},
        NO_CREDENTIALS,
        None,
        read,
    )


OPERATIONS: tuple[UiaOperation, ...] = (
    UiaOperation("register", "REG-UIA", False, _register),
    UiaOperation("get-login-token", "LOGINTOKEN-UIA-ALWAYS", True, _get_login_token),
    UiaOperation("change-password", "PWD-CHANGE", True, _change_password, destructive=True),
    UiaOperation("deactivate", "DEACT-UIA", True, _deactivate, destructive=True),
    UiaOperation("add-3pid", "3PID-ADD", True, _add_3pid),
    UiaOperation("delete-device", "DEV-DELETE", True, _delete_device),
    UiaOperation("delete-devices", "DEV-DELETE", True, _delete_devices),
    UiaOperation(
        "cross-signing-replace", "XSIGN-UIA", True, _replace_cross_signing, destructive=True
    ),
)
AUTHENTICATED = tuple(op for op in OPERATIONS if op.id != "register")
