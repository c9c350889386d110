"""Legacy login: GET /login flows, POST /login with a password, and what it must answer."""

import secrets

import pytest

from mxconform.errors import Unsupported
from mxconform.http.credentials import Transport, bearer_header
from mxconform.legacy import api as legacy
from mxconform.legacy.uia import password_change
from mxconform.plugin.checks import DESTRUCTIVE_REASON
from mxconform.spec.matchers import body, expect, expect_true, match
from mxconform.spec.verdicts import observe, precondition

pytestmark = pytest.mark.api("legacy")


@pytest.mark.check("legacy.login.flows", "LOGIN-GET-FLOWS")
async def check_login_flows_are_listed(hs):
    """GET /login lists the login flows, each with a type, and includes m.login.password."""
    resp = await legacy.login_flows(hs)
    expect(resp, match.status(200), match.json_keys_present("flows"))
    flows = (body(resp) or {}).get("flows")
    types = [f.get("type") for f in flows if isinstance(f, dict)] if isinstance(flows, list) else []
    expect_true(
        bool(types) and all(isinstance(t, str) for t in types),
        "every flow carries a string type",
        expected="flows[].type",
        observed=flows,
    )
    expect_true(
        "m.login.password" in types,
        "the password flow is offered",
        req="LOGIN-GET-FLOWS",
        expected="m.login.password",
        observed=types,
    )


@pytest.mark.parametrize("style", ["identifier", "user-field"])
@pytest.mark.check("legacy.login.password", "LOGIN-200", "LOGIN-IDENTIFIERS", "LOGIN-NO-UIA")
async def check_password_login_returns_a_session(hs, fresh_user, style):
    """POST /login with m.login.password (identifier form and the deprecated user field)
    answers with the full user ID, an access token and a device ID."""
    resp = await legacy.login_password(hs, fresh_user.localpart, fresh_user.password, style=style)
    expect(
        resp,
        match.status(200),
        match.json_key_equal("user_id", fresh_user.user_id),
        match.json_key_type("access_token", str, absent_ok=False),
        match.json_key_type("device_id", str, absent_ok=False),
    )


@pytest.mark.check("legacy.login.wrong-password", "LOGIN-BAD-CREDS")
async def check_wrong_password_is_forbidden(hs, fresh_user):
    """A wrong password is refused with 403 M_FORBIDDEN."""
    resp = await legacy.login_password(hs, fresh_user.user_id, fresh_user.password + "x")
    expect(resp, match.status(403), match.errcode("M_FORBIDDEN"))


@pytest.mark.check("legacy.login.unknown-user", "LOGIN-BAD-CREDS")
async def check_unknown_user_is_forbidden(hs, fresh_user):
    """A user that does not exist is refused with 403 M_FORBIDDEN."""
    resp = await legacy.login_password(hs, f"{fresh_user.localpart}-absent", "whatever-pass")
    expect(resp, match.status(403), match.errcode("M_FORBIDDEN"))


@pytest.mark.check("legacy.login.device-reuse", "DEVICE-LEGACY-GEN", "DEVICE-REUSE")
async def check_login_with_existing_device_keeps_it(hs, fresh_user):
    """Logging in with an existing device_id (the one the account was registered with)
    answers that device_id and keeps one device of that ID; whether the old token dies is
    the server's choice (recorded)."""
    device = fresh_user.device_id
    again = await legacy.login_password(
        hs, fresh_user.user_id, fresh_user.password, device_id=device
    )
    expect(again, match.status(200), match.json_key_equal("device_id", device))
    listed = await legacy.devices(hs, legacy.bearer_of(again))
    expect(listed, match.status(200))
    expect_true(
        device in legacy.device_ids(listed),
        "the re-used device is still listed",
        expected=device,
        observed=sorted(legacy.device_ids(listed)),
    )
    old = await legacy.whoami(hs, bearer_header(fresh_user.access_token))
    observe(
        f"the earlier token of the re-used device now answers HTTP {old.status_code}",
        req="DEVICE-REUSE",
    )


@pytest.mark.check("legacy.login.display-name", "LOGIN-DISPLAYNAME")
async def check_initial_device_display_name_is_shown(hs, fresh_user):
    """initial_device_display_name names the new device in GET /devices."""
    name = f"mxconform device {secrets.token_hex(3)}"
    resp = await legacy.login_password(
        hs, fresh_user.user_id, fresh_user.password, display_name=name
    )
    expect(resp, match.status(200))
    listed = await legacy.devices(hs, legacy.bearer_of(resp))
    names = {d.get("device_id"): d.get("display_name") for d in body(listed)["devices"]}
    expect_true(
        names.get(body(resp)["device_id"]) == name,
        "the device carries its name",
        expected=name,
        observed=names.get(body(resp)["device_id"]),
    )


@pytest.mark.check("legacy.login.refresh-opt-in", "LOGIN-REFRESH-OPTIN", "LOGIN-200")
async def check_refresh_opt_in_gives_refresh_token(hs, fresh_user):
    """With refresh_token: true the login answer adds refresh_token and expires_in_ms."""
    resp = await legacy.login_password(
        hs, fresh_user.user_id, fresh_user.password, refresh_token=True
    )
    expect(resp, match.status(200), req="LOGIN-200")
    expect(
        resp,
        match.json_key_type("refresh_token", str, absent_ok=False),
        match.json_key_type("expires_in_ms", int, absent_ok=False),
    )


LONG_PASSWORD_BYTES = 100  # past the 72 bytes bcrypt reads


@pytest.mark.check("legacy.login.long-password", "LOGIN-200", "LOGIN-BAD-CREDS")
async def check_a_long_password_registers_and_logs_in(hs, legacy_users):
    """A 100-byte password registers and logs in, and a wrong 100-byte one is refused 403: a
    server handing the password to bcrypt as it is refused it (Synapse of the 1.140 era
    answered 500 at registration and login). How much of it a server compares the spec
    does not say (Synapse compares the first 72 bytes), so the wrong one differs early."""
    if not legacy_users.may_destroy:
        raise Unsupported(
            "the given accounts' passwords are theirs: needs an account the run makes"
        )
    password = secrets.token_urlsafe(LONG_PASSWORD_BYTES)[:LONG_PASSWORD_BYTES]
    with precondition(f"registering an account with a {LONG_PASSWORD_BYTES}-byte password"):
        user = await legacy_users.create(hs, "longpw", password=password)
    whole = await legacy.login_password(hs, user.user_id, password)
    expect(whole, match.status(200), req="LOGIN-200")
    wrong = ("x" if password[0] != "x" else "y") + password[1:]
    refused = await legacy.login_password(hs, user.user_id, wrong)
    expect(refused, match.status(403), match.errcode("M_FORBIDDEN"), req="LOGIN-BAD-CREDS")


@pytest.mark.check("legacy.account.long-password-change", "PWD-CHANGE")
async def check_a_password_change_takes_a_long_password(hs, legacy_users):
    """A password change to a 100-byte password is UIA-guarded (a 401 challenge first), and
    with the password stage completed succeeds; read back, the account takes the new password
    and not the old one (Synapse 1.140 with bcrypt 5 answered 500, before UIA)."""
    if not legacy_users.may_destroy:
        raise Unsupported(DESTRUCTIVE_REASON, "policy")
    new_password = legacy_users.new_password(LONG_PASSWORD_BYTES)
    with precondition("registering an account"):
        prepared = await password_change(hs, legacy_users, Transport.HEADER, new_password)
    first = await prepared.send(hs, None)
    expect(first, match.status(401), match.flows_of_stages(), req="PWD-CHANGE")
    user = prepared.user
    resp = await prepared.send(
        hs, legacy.password_auth(user.user_id, user.password, body(first).get("session"))
    )
    expect(resp, match.status(200), req="PWD-CHANGE")
    took, seen = await prepared.took_effect()
    expect_true(
        took,
        f"the {LONG_PASSWORD_BYTES}-byte password was not taken: {seen}",
        req="PWD-CHANGE",
        expected="the new password taken, the old one refused",
        observed=seen,
    )
