"""User-Interactive Authentication on all eight UIA operations, in legacy mode.

Every check uses a fresh user, so no grace window from another check's UIA can let a request
through. Effects are proved by reading state back, never by the status code alone.
"""

import pytest

from mxconform.errors import NotApplicable, Unsupported
from mxconform.legacy import api as legacy
from mxconform.legacy.uia import AUTHENTICATED, OPERATIONS
from mxconform.plugin.checks import DESTRUCTIVE_REASON
from mxconform.spec.matchers import (
    body,
    expect,
    expect_true,
    expect_uia_challenge,
    match,
    require,
)
from mxconform.spec.verdicts import precondition

pytestmark = pytest.mark.api("legacy")

with_token = pytest.mark.parametrize("operation", AUTHENTICATED, ids=str)
every = pytest.mark.parametrize("operation", OPERATIONS, ids=str)


async def prepare(hs, legacy_users, operation, transport):
    if operation.destructive and not legacy_users.may_destroy:
        raise Unsupported(DESTRUCTIVE_REASON, "policy")
    with precondition(f"preparing {operation}"):
        prepared = await operation.prepare(hs, legacy_users, transport)
    if prepared.unsupported:
        raise NotApplicable(prepared.unsupported)
    return prepared


async def challenge(hs, prepared):
    """The 401 UIA challenge a check starts from (its own rule is tested elsewhere)."""
    first = await prepared.send(hs, None)
    if why := prepared.not_offered(first):
        raise NotApplicable(why)
    require(first, match.status(401), match.flows_of_stages(), what="the UIA challenge")
    return first


async def expect_no_effect(prepared, operation, what):
    """Read the state back: the refused request must not have happened."""
    took, seen = await prepared.took_effect()
    expect_true(
        not took,
        f"{operation}: {what} took effect all the same, read back: {seen}",
        expected="no effect",
        observed=seen,
    )


@with_token
@pytest.mark.check("uia.challenge", "UIA-NOAUTH-401", "UIA-401-SHAPE")
async def check_request_without_auth_is_challenged(hs, legacy_users, operation, transport):
    """Without `auth` the operation answers a 401 challenge and, read back, did not happen."""
    prepared = await prepare(hs, legacy_users, operation, transport)
    resp = await prepared.send(hs, None)
    if why := prepared.not_offered(resp):
        raise NotApplicable(why)
    expect_uia_challenge(resp)
    if operation.id in ("delete-device", "delete-devices"):  # more proof than the token
        expect(resp, match.status(401), req="UIA-DEVICE-DELETE-SHOULD")
    await expect_no_effect(prepared, operation, "a request without auth")


@pytest.mark.check("uia.challenge.register", "UIA-NOAUTH-401", "UIA-401-SHAPE")
async def check_registration_without_auth_is_challenged(hs, legacy_users):
    """Registration without `auth` answers a 401 challenge and registers nobody."""
    prepared = await prepare(hs, legacy_users, OPERATIONS[0], None)
    resp = await prepared.send(hs, None)
    if resp.status_code == 403:
        raise NotApplicable("the server has registration turned off (403)")
    expect_uia_challenge(resp)
    await expect_no_effect(prepared, OPERATIONS[0], "a registration without auth")


@with_token
@pytest.mark.check("uia.wrong-password", "UIA-STAGE-FAILED")
async def check_wrong_password_stage_is_refused(hs, legacy_users, operation, transport):
    """A wrong password stage answers the 401 UIA body plus the standard `errcode` and
    `error` (the spec's `M_FORBIDDEN` is its example, not a rule), with the same session,
    the stage not completed, and the operation not done."""
    prepared = await prepare(hs, legacy_users, operation, transport)
    first = await challenge(hs, prepared)
    flows = [f.get("stages") for f in (body(first) or {}).get("flows", [])]
    if ["m.login.password"] not in flows:
        raise Unsupported(f"no password stage is offered here (flows: {flows})")
    session = body(first).get("session")
    user = prepared.user
    resp = await prepared.send(hs, legacy.password_auth(user.user_id, "wrong-Passw0rd", session))
    expect(
        resp,
        match.status(401),
        match.json_key_type("errcode", str, absent_ok=False),
        match.json_key_type("error", str, absent_ok=False),
        match.flows_of_stages(),
    )
    if session is not None:
        expect(resp, match.json_key_equal("session", session))
    completed = (body(resp) or {}).get("completed") or []
    expect_true(
        "m.login.password" not in completed,
        "the failed stage is not completed",
        expected="m.login.password not in completed",
        observed=completed,
    )
    await expect_no_effect(prepared, operation, "the refused request")


@with_token
@pytest.mark.check("uia.completed", "UIA-DONE", "UIA-TYPES")
async def check_completed_password_stage_performs_the_operation(
    hs, legacy_users, operation, transport
):
    """With the password stage completed the operation succeeds, and reading back shows it
    happened."""
    prepared = await prepare(hs, legacy_users, operation, transport)
    first = await challenge(hs, prepared)
    user = prepared.user
    resp = await prepared.send(
        hs, legacy.password_auth(user.user_id, user.password, body(first).get("session"))
    )
    if prepared.effect_unobservable:
        expect_true(
            resp.status_code != 401,
            f"{operation}: the completed password stage was answered HTTP 401 "
            f"{(body(resp) or {}).get('errcode') or ''}: UIA did not let the request through",
            expected="past UIA (not 401)",
            observed=f"HTTP {resp.status_code}",
        )
        raise Unsupported(f"UIA passed; the effect is not checked: {prepared.effect_unobservable}")
    expect(resp, match.status(200))
    if operation.id == "get-login-token":
        expect(
            resp,
            match.json_key_type("login_token", str, absent_ok=False),
            match.json_key_type("expires_in_ms", int, absent_ok=False),
            req="LOGINTOKEN-200",
        )
        token = body(resp)["login_token"]
        once = await legacy.login_token(hs, token)
        expect(once, match.status(200), req="LOGINTOKEN-200")
        again = await legacy.login_token(hs, token)
        expect(again, match.status(403), match.errcode("M_FORBIDDEN"), req="LOGINTOKEN-SINGLE-USE")
        return
    took, seen = await prepared.took_effect()
    expect_true(
        took,
        f"{operation}: the completed request shows no effect when read back: {seen}",
        req=operation.requirement,
        expected="effect visible",
        observed=seen,
    )
