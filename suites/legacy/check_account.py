"""More of the legacy API: login refusals (unknown type, unknown login token or third-party
identifier), the login fallback page, whoami, the device endpoints on the check's own device,
registration (device generated, `kind`, token validity), `/versions` with a token, a logout
with no body at all, a soft-logged-out device logging in again, and login after deactivation.

Every request goes to the harness's own test accounts or to run-unique names."""

import pytest

from mxconform.errors import NotApplicable, Unsupported
from mxconform.http.credentials import NO_CREDENTIALS, bearer_header
from mxconform.legacy import api as legacy
from mxconform.spec.matchers import body, expect, expect_true, match, require

pytestmark = pytest.mark.api("legacy")

V3 = "/_matrix/client/v3"
UNKNOWN_TOKEN = "mxconform_never_issued_0123456789"
MAX_EXPIRY_WAIT_S = 30.0


@pytest.mark.check("legacy.login.unknown-type", "LOGIN-TYPE-ADVERTISED")
async def check_unadvertised_login_type_is_refused(hs, fresh_user):
    """A login `type` that GET /login did not advertise is refused with 400."""
    flows = await legacy.login_flows(hs)
    require(flows, match.status(200), what="GET /login")
    kind = "org.mxconform.never_advertised"
    advertised = [f.get("type") for f in (body(flows) or {}).get("flows", [])]
    require(flows, match.status(200), what=f"GET /login not listing {kind} ({advertised})")
    resp = await hs.request(
        "POST",
        f"{V3}/login",
        json={"type": kind, "identifier": {"type": "m.id.user", "user": fresh_user.user_id}},
    )
    expect(resp, match.status(400), match.json_keys_present("errcode"))


@pytest.mark.check("legacy.login.token-invalid", "LOGIN-TOKEN-INVALID")
async def check_unknown_login_token_is_forbidden(hs):
    """An m.login.token login with a token the server never issued gets 403 M_FORBIDDEN."""
    flows = await legacy.login_flows(hs)
    require(flows, match.status(200), what="GET /login")
    types = [f.get("type") for f in (body(flows) or {}).get("flows", [])]
    if "m.login.token" not in types:
        raise NotApplicable(f"the server does not offer m.login.token ({types})")
    resp = await legacy.login_token(hs, UNKNOWN_TOKEN)
    expect(resp, match.status(403), match.errcode("M_FORBIDDEN"))


@pytest.mark.check("legacy.login.unknown-3pid", "LOGIN-UNKNOWN-3PID")
async def check_unknown_third_party_identifier_is_forbidden(hs, legacy_users):
    """A password login naming an e-mail address no account has is refused with 403."""
    address = f"{legacy_users.unused_name('3pid')}@mxconform.invalid"
    resp = await hs.request(
        "POST",
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": address},
            "password": legacy_users.new_password(),
        },
    )
    expect(resp, match.status(403), match.json_keys_present("errcode"))


@pytest.mark.check("legacy.login.fallback", "LOGIN-FALLBACK")
async def check_login_fallback_page_is_html(hs):
    """GET /_matrix/static/client/login/ serves an HTML login page."""
    resp = await hs.request("GET", "/_matrix/static/client/login/", credentials=NO_CREDENTIALS)
    expect(resp, match.status(200), match.content_type("text/html"))


@pytest.mark.check("legacy.whoami.unknown-token", "WHOAMI-401")
async def check_whoami_refuses_an_unknown_token(hs):
    """whoami with a token the server never issued answers 401 M_UNKNOWN_TOKEN."""
    resp = await legacy.whoami(hs, bearer_header(UNKNOWN_TOKEN))
    expect(resp, match.status(401), match.errcode("M_UNKNOWN_TOKEN"))


@pytest.mark.check("legacy.devices.get", "DEV-GET")
async def check_own_device_is_read_and_unknown_one_is_404(hs, fresh_user):
    """GET /devices/{own} answers that device; GET /devices/{unknown} answers 404."""
    creds = bearer_header(fresh_user.access_token)
    own = await hs.request("GET", f"{V3}/devices/{fresh_user.device_id}", credentials=creds)
    expect(own, match.status(200), match.json_key_equal("device_id", fresh_user.device_id))
    unknown = await hs.request("GET", f"{V3}/devices/MXCNOSUCHDEVICE", credentials=creds)
    expect(unknown, match.status(404))


@pytest.mark.check("legacy.devices.update", "DEV-UPDATE")
async def check_own_device_can_be_renamed(hs, fresh_user, legacy_users):
    """PUT /devices/{own} renames it (read back); an unknown device answers 404."""
    creds = bearer_header(fresh_user.access_token)
    name = f"mxconform renamed {legacy_users.unused_name('dev')}"
    path = f"{V3}/devices/{fresh_user.device_id}"
    resp = await hs.request("PUT", path, credentials=creds, json={"display_name": name})
    expect(resp, match.status(200))
    after = await hs.request("GET", path, credentials=creds)
    expect(after, match.status(200), match.json_key_equal("display_name", name))
    unknown = await hs.request(
        "PUT", f"{V3}/devices/MXCNOSUCHDEVICE", credentials=creds, json={"display_name": name}
    )
    expect(unknown, match.status(404))


@pytest.mark.check("legacy.versions.with-token", "VERSIONS-OPTIONAL-AUTH", "VERSIONS-AUTH-SHAPE")
async def check_versions_accepts_a_token(hs, user):
    """GET /versions answers 200 with an access token as without one, with the required
    `versions`, an array of strings (the token may change `unstable_features`, not that)."""
    resp = await hs.request(
        "GET", "/_matrix/client/versions", credentials=bearer_header(user.access_token)
    )
    expect(resp, match.status(200))  # refusing the token: the MAY's business (INFO)
    if resp.status_code != 200:
        return
    expect(resp, match.json_key_type("versions", list, absent_ok=False), req="VERSIONS-AUTH-SHAPE")
    versions = body(resp)["versions"]
    expect_true(
        all(isinstance(v, str) for v in versions),
        "the authenticated answer's versions are not all strings",
        req="VERSIONS-AUTH-SHAPE",
        expected="an array of strings",
        observed=versions,
    )


@pytest.mark.check("legacy.register.token-validity", "REG-TOKEN-VALIDITY")
async def check_unknown_registration_token_is_not_valid(hs):
    """The validity endpoint says `valid: false` for an unknown token (or 403 when disabled)."""
    resp = await hs.request(
        "GET",
        "/_matrix/client/v1/register/m.login.registration_token/validity",
        params={"token": "mxconform-never-issued"},
        credentials=NO_CREDENTIALS,
    )
    if resp.status_code == 403:
        expect(resp, match.errcode("M_FORBIDDEN"))
        return
    expect(resp, match.status(200), match.json_key_equal("valid", False))


@pytest.mark.check("legacy.register.kind-guest", "REG-KIND")
async def check_guest_kind_is_served_or_forbidden(hs):
    """`kind=guest` registers a guest (200 with a token) or is refused 403 with a Matrix
    error. registration.yaml's M_FORBIDDEN is its example, not a rule: the 403 is what
    tells a client the kind is not allowed (Synapse answers M_UNKNOWN, "Guest access is
    disabled", and the standard error section has clients rely on the status then)."""
    resp = await legacy.register(hs, {}, kind="guest")
    if resp.status_code == 403:
        expect(resp, match.json_key_type("errcode", str, absent_ok=False))
        return
    expect(resp, match.status(200), match.json_key_type("access_token", str, absent_ok=False))


@pytest.mark.check("legacy.logout.no-body", "API-EMPTY-BODY", "LOGOUT-1")
async def check_logout_takes_an_empty_body(hs, fresh_user):
    """POST /logout with no body at all answers 200, and the token is refused afterwards.
    The device logged out is the one the check's own account was registered with."""
    token = fresh_user.access_token
    resp = await hs.request("POST", f"{V3}/logout", credentials=bearer_header(token))
    expect(resp, match.status(200))
    after = await legacy.whoami(hs, bearer_header(token))
    expect(after, match.status(401), match.errcode("M_UNKNOWN_TOKEN"), req="LOGOUT-1")


@pytest.mark.check("legacy.softlogout.relogin", "SOFTLOGOUT-RELOGIN")
async def check_soft_logged_out_device_logs_in_again(hs, expiring_login):
    """After its token expires, a login naming the same device_id keeps that device."""
    fresh_user = expiring_login.user
    require(expiring_login.response, match.status(200), what="a login with refresh_token: true")
    data = expiring_login.data()
    lifetime_s = (data.get("expires_in_ms") or 0) / 1000
    if not isinstance(data.get("refresh_token"), str) or not 0 < lifetime_s <= MAX_EXPIRY_WAIT_S:
        raise Unsupported("no access token that expires within the wait budget", "budget")
    await expiring_login.wait(lifetime_s + 0.5)  # its clock started with the target's first check
    expired = await legacy.whoami(hs, bearer_header(data["access_token"]))
    require(expired, match.status(401), what="the expired token (soft logout)")
    again = await legacy.login_password(
        hs, fresh_user.user_id, fresh_user.password, device_id=data["device_id"]
    )
    expect(again, match.status(200), match.json_key_equal("device_id", data["device_id"]))
    who = await legacy.whoami(hs, bearer_header(body(again)["access_token"]))
    expect(who, match.status(200), match.json_key_equal("device_id", data["device_id"]))


DEACTIVATED_CODES = ("M_USER_DEACTIVATED", "M_FORBIDDEN")


async def deactivate_own_account(hs, user, legacy_users):
    """The check's own account deactivated through UIA with its password (a precondition)."""
    creds = bearer_header(user.access_token)
    start = await hs.request("POST", f"{V3}/account/deactivate", json={}, credentials=creds)
    session = (body(start) or {}).get("session")
    legacy_users.deactivation_may_happen(user.user_id)
    done = await hs.request(
        "POST",
        f"{V3}/account/deactivate",
        json={"auth": legacy.password_auth(user.user_id, user.password, session)},
        credentials=creds,
    )
    require(done, match.status(200), what="deactivating the check's own account")
    legacy_users.deactivated(user.user_id)


async def expect_password_login_refused(hs, user):
    """A deactivated account's password login: 403 and no token (LOGIN-DEACTIVATED-403), with
    one of the two codes the spec allows (LOGIN-DEACTIVATED)."""
    resp = await legacy.login_password(hs, user.user_id, user.password)
    expect(resp, match.status(403), match.json_key_absent("access_token"))
    expect(
        resp,
        match.json_key_in("errcode", DEACTIVATED_CODES, absent_ok=False),
        req="LOGIN-DEACTIVATED",
    )


@pytest.mark.destructive
@pytest.mark.check("legacy.login.deactivated", "LOGIN-DEACTIVATED-403", "LOGIN-DEACTIVATED")
async def check_deactivated_account_cannot_log_in(hs, fresh_user, legacy_users):
    """After deactivation a password login is refused 403 (M_USER_DEACTIVATED or M_FORBIDDEN)."""
    await deactivate_own_account(hs, fresh_user, legacy_users)
    await expect_password_login_refused(hs, fresh_user)


@pytest.mark.destructive
@pytest.mark.check(
    "account.deactivated-by-admin.login", "LOGIN-DEACTIVATED-403", "LOGIN-DEACTIVATED"
)
async def check_account_deactivated_by_admin_cannot_log_in(
    hs, fresh_user, synapse_admin, legacy_users
):
    """An account an administrator deactivated is refused a password login, 403 (needs an
    administrator: SKIP without one)."""
    legacy_users.deactivation_may_happen(fresh_user.user_id)
    await synapse_admin.deactivate(hs, fresh_user.user_id)
    legacy_users.deactivated(fresh_user.user_id)
    await expect_password_login_refused(hs, fresh_user)


async def login_token_for(hs, user):
    """A login token for `user` from POST /login/get_token (UIA: the password stage), or SKIP
    when the server does not advertise m.get_login_token."""
    caps = await hs.request(
        "GET", f"{V3}/capabilities", credentials=bearer_header(user.access_token)
    )
    require(caps, match.status(200), what="GET /capabilities")
    enabled = (body(caps).get("capabilities") or {}).get("m.get_login_token") or {}
    if not (isinstance(enabled, dict) and enabled.get("enabled") is True):
        raise NotApplicable(
            "the server does not advertise m.get_login_token (absent means not allowed)"
        )
    path = "/_matrix/client/v1/login/get_token"
    creds = bearer_header(user.access_token)
    first = await hs.request("POST", path, json={}, credentials=creds)
    auth = legacy.password_auth(user.user_id, user.password, (body(first) or {}).get("session"))
    done = await hs.request("POST", path, json={"auth": auth}, credentials=creds)
    require(done, match.status(200), what="POST /login/get_token with the password stage")
    return body(done)["login_token"]


@pytest.mark.destructive
@pytest.mark.check("legacy.login.deactivated.token", "DEACT-UIA", "LOGIN-DEACTIVATED")
async def check_deactivated_account_cannot_use_a_login_token(hs, fresh_user, legacy_users):
    """A login token issued before the account was deactivated logs nobody in afterwards:
    refused 403 (M_USER_DEACTIVATED or M_FORBIDDEN), as a password login is."""
    token = await login_token_for(hs, fresh_user)
    await deactivate_own_account(hs, fresh_user, legacy_users)
    resp = await legacy.login_token(hs, token)
    expect(
        resp,
        match.status(403),
        match.json_key_in("errcode", DEACTIVATED_CODES, absent_ok=False),
    )


@pytest.mark.check("legacy.register.device-generated", "REG-DEVICE")
async def check_registration_generates_a_device(hs, legacy_users):
    """A registration without `device_id` answers a device the server generated."""
    name, password = legacy_users.registration("regdev")
    request = {"username": name, "password": password}
    challenge = await legacy.register(hs, request)
    if challenge.status_code == 403:
        raise NotApplicable("the server has registration turned off (403)")
    flows = [f.get("stages") for f in (body(challenge) or {}).get("flows", [])]
    if ["m.login.dummy"] not in flows:
        raise Unsupported(f"registration needs stages the harness cannot complete here: {flows}")
    request["auth"] = legacy.stage_auth("m.login.dummy", body(challenge).get("session"))
    resp = await legacy.register(hs, request)
    require(resp, match.status(200), what="the completed registration")
    legacy_users.adopt(body(resp)["user_id"], password)
    expect(resp, match.json_key_type("device_id", str, absent_ok=False))
    expect_true(bool(body(resp)["device_id"]), "a non-empty device_id", observed=body(resp))
