"""The UIA operations as an OAuth-token holder would try them, each with its read-back.

The spec says tokens from the OAuth 2.0 API cannot be used on UIA endpoints. A refusal is
only half the proof: each operation here also knows the follow-up reads that show the
refused request changed nothing (the second device still listed and its token working, the
account still usable, no address added, the old cross-signing keys still stored).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mxconform.errors import Unsupported
from mxconform.http.client import MatrixClient
from mxconform.http.credentials import bearer_header
from mxconform.legacy import api as legacy
from mxconform.legacy.api import CLIENT_V3
from mxconform.legacy.uia import (
    Prepared,
    cross_signing_keys,
    master_key_id,
    stored_master_key,
    threepids_added,
    upload_first_keys,
)
from mxconform.oauth.users import OAuthLogin, OAuthUsers

Preparer = Callable[[MatrixClient, OAuthUsers, OAuthLogin], Awaitable[Prepared]]


@dataclass(frozen=True)
class OAuthUiaOperation:
    id: str
    destructive: bool
    prepare: Preparer
    requirement: str  # the endpoint's own rule: what its 2xx means

    def __str__(self) -> str:
        return self.id


async def _token_works(client: MatrixClient, login: OAuthLogin) -> tuple[bool, int]:
    who = await legacy.whoami(client, bearer_header(login.tokens.access_token))
    return who.status_code == 200, who.status_code


def _device_gone(
    client: MatrixClient, user: OAuthLogin, other: OAuthLogin
) -> Callable[[], Awaitable[tuple[bool, str]]]:
    async def read() -> tuple[bool, str]:
        listed = await legacy.devices(client, bearer_header(user.tokens.access_token))
        present = other.device_id in legacy.device_ids(listed)
        works, status = await _token_works(client, other)
        return (not present or not works), (
            f"device {other.device_id} listed: {present}; its token answers HTTP {status}"
        )

    return read


async def _second_device(client: MatrixClient, users: OAuthUsers, user: OAuthLogin) -> OAuthLogin:
    other = await users.login(client, user.account, "setup: a second device to delete")
    if other.given:
        raise Unsupported(
            "the second device would be one given in servers.yaml: never risked", "policy"
        )
    if other.device_id is None:
        raise Unsupported("the second login has no device to delete")
    return other


async def _delete_devices(client: MatrixClient, users: OAuthUsers, user: OAuthLogin) -> Prepared:
    other = await _second_device(client, users, user)
    return Prepared(
        "POST",
        f"{CLIENT_V3}/delete_devices",
        {"devices": [other.device_id]},
        bearer_header(user.tokens.access_token),
        user.session,
        _device_gone(client, user, other),
    )


async def _delete_device(client: MatrixClient, users: OAuthUsers, user: OAuthLogin) -> Prepared:
    other = await _second_device(client, users, user)
    return Prepared(
        "DELETE",
        f"{CLIENT_V3}/devices/{other.device_id}",
        {},
        bearer_header(user.tokens.access_token),
        user.session,
        _device_gone(client, user, other),
    )


async def _change_password(client: MatrixClient, users: OAuthUsers, user: OAuthLogin) -> Prepared:
    new_password = users.new_password()
    account = user.account
    start = users.api(client).authorization_request(await users.client_id(client)).url

    async def read() -> tuple[bool, str]:
        works, status = await _token_works(client, user)
        seen = f"the session's token answers HTTP {status}"
        changed = not works
        if account.password is not None and users.driver.interactive:
            try:
                old = await users.driver.password_works(
                    account, account.password, start, client.recorder
                )
                new = await users.driver.password_works(
                    account, new_password, start, client.recorder
                )
            except Unsupported:
                return changed, seen + "; passwords cannot be tried with this driver"
            if new:
                account.password = new_password  # cleanup and later logins need it
            changed = changed or new or not old
            seen += f"; the old password logs in: {old}; the new one: {new}"
        else:
            seen += "; passwords cannot be tried with this driver"
        return changed, seen

    return Prepared(
        "POST",
        f"{CLIENT_V3}/account/password",
        {"new_password": new_password, "logout_devices": False},
        bearer_header(user.tokens.access_token),
        user.session,
        read,
    )


async def _deactivate(client: MatrixClient, users: OAuthUsers, user: OAuthLogin) -> Prepared:
    async def read() -> tuple[bool, str]:
        works, status = await _token_works(client, user)
        return not works, f"the account's token afterwards: HTTP {status}"

    return Prepared(
        "POST",
        f"{CLIENT_V3}/account/deactivate",
        {},
        bearer_header(user.tokens.access_token),
        user.session,
        read,
    )


async def _add_3pid(client: MatrixClient, users: OAuthUsers, user: OAuthLogin) -> Prepared:
    async def read() -> tuple[bool, str]:
        return await threepids_added(client, user.tokens.access_token)

    return Prepared(
        "POST",
        f"{CLIENT_V3}/account/3pid/add",
        {"client_secret": "mxconformSecret1", "sid": "mxconform-no-such-session"},
        bearer_header(user.tokens.access_token),
        user.session,
        read,
    )


async def _get_login_token(client: MatrixClient, users: OAuthUsers, user: OAuthLogin) -> Prepared:
    async def read() -> tuple[bool, str]:
        return False, "no state to read back: a login_token in the answer is the effect"

    return Prepared(
        "POST",
        "/_matrix/client/v1/login/get_token",
        {},
        bearer_header(user.tokens.access_token),
        user.session,
        read,
    )


async def _replace_cross_signing(
    client: MatrixClient, users: OAuthUsers, user: OAuthLogin
) -> Prepared:
    await upload_first_keys(client, user.session, cross_signing_keys(user.account.user_id))
    replacement = cross_signing_keys(user.account.user_id)

    async def read() -> tuple[bool, str]:
        stored = await stored_master_key(client, user.session)
        return stored == master_key_id(replacement), (
            f"stored master key is the {'new' if stored == master_key_id(replacement) else 'old'}"
            f" one ({stored})"
        )

    return Prepared(
        "POST",
        f"{CLIENT_V3}/keys/device_signing/upload",
        replacement,
        bearer_header(user.tokens.access_token),
        user.session,
        read,
    )


OAUTH_UIA_OPERATIONS: tuple[OAuthUiaOperation, ...] = (
    OAuthUiaOperation("delete-devices", False, _delete_devices, "DEV-DELETE"),
    OAuthUiaOperation("delete-device", False, _delete_device, "DEV-DELETE"),
    OAuthUiaOperation("change-password", True, _change_password, "PWD-CHANGE"),
    OAuthUiaOperation("deactivate", True, _deactivate, "DEACT-UIA"),
    OAuthUiaOperation("add-3pid", False, _add_3pid, "3PID-ADD"),
    OAuthUiaOperation("cross-signing-replace", True, _replace_cross_signing, "XSIGN-UIA"),
    OAuthUiaOperation("get-login-token", False, _get_login_token, "LOGINTOKEN-UIA-ALWAYS"),
)
