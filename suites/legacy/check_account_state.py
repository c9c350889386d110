"""Accounts an administrator acted on: locked, suspended (deactivated by an administrator:
`legacy/check_account.py`, beside its twin deactivated through UIA).

These need an administrator (`synapse_admin`: the target's `admin_token`, or an admin account
the run registers through shared-secret registration); without one they SKIP. The admin API
is only ever pointed at the check's own fresh account."""

from contextlib import asynccontextmanager

import pytest

from mxconform.http.credentials import bearer_header
from mxconform.legacy import api as legacy
from mxconform.spec.matchers import body, expect, match, require
from mxconform.spec.verdicts import observe

pytestmark = [pytest.mark.api("legacy"), pytest.mark.destructive]

V3 = "/_matrix/client/v3"


@asynccontextmanager
async def locked(hs, user, synapse_admin):
    """The account locked; unlocked again afterwards so cleanup finds it as it was."""
    await synapse_admin.set_locked(hs, user.user_id, True)
    try:
        yield user
    finally:
        await synapse_admin.set_locked(hs, user.user_id, False)


@pytest.fixture
async def locked_user(hs, fresh_user, synapse_admin):
    """The check's fresh user, locked (its registration token is from before the lock)."""
    async with locked(hs, fresh_user, synapse_admin) as user:
        yield user


@pytest.fixture
async def locked_user_with_second_device(hs, fresh_user, synapse_admin):
    """The check's fresh user with a second device logged in before the lock, then locked."""
    second = await legacy.login_password(hs, fresh_user.user_id, fresh_user.password)
    require(second, match.status(200), what="a second device, before the lock")
    async with locked(hs, fresh_user, synapse_admin) as user:
        yield user, body(second)["access_token"]


@pytest.mark.check("account.locked.refused", "LOCK-401")
async def check_locked_account_gets_401_user_locked(hs, locked_user):
    """A locked account's token is answered 401 M_USER_LOCKED with soft_logout: true."""
    user = locked_user
    resp = await legacy.whoami(hs, bearer_header(user.access_token))
    expect(
        resp,
        match.status(401),
        match.errcode("M_USER_LOCKED"),
        match.json_key_equal("soft_logout", True),
    )


@pytest.mark.check("account.locked.no-login", "LOCK-NO-NEW-TOKEN")
async def check_locked_account_gets_no_new_token(hs, locked_user):
    """While the lock is on, a password login issues no access token."""
    user = locked_user
    resp = await legacy.login_password(hs, user.user_id, user.password)
    expect(
        resp,
        match.status_in(range(400, 500), "a 4xx refusal"),
        match.json_key_absent("access_token"),
    )


@pytest.mark.check("account.locked.logout", "LOGOUT-LOCKED")
async def check_locked_account_can_log_out(hs, locked_user_with_second_device):
    """POST /logout keeps working on a locked account, and POST /logout/all after it."""
    user, second = locked_user_with_second_device
    resp = await legacy.logout(hs, bearer_header(second))
    expect(resp, match.status(200))
    everything = await legacy.logout_all(hs, bearer_header(user.access_token))
    expect(everything, match.status(200))


@pytest.mark.check("account.locked.keeps-tokens", "LOCK-KEEP-TOKENS")
async def check_unlocked_account_keeps_its_token(hs, fresh_user, synapse_admin):
    """A lock does not revoke tokens: after unlocking, the token from before works again."""
    await synapse_admin.set_locked(hs, fresh_user.user_id, True)
    locked = await legacy.whoami(hs, bearer_header(fresh_user.access_token))
    require(locked, match.status(401), what="the token while the account is locked")
    await synapse_admin.set_locked(hs, fresh_user.user_id, False)
    resp = await legacy.whoami(hs, bearer_header(fresh_user.access_token))
    expect(resp, match.status(200), match.json_key_equal("user_id", fresh_user.user_id))


@pytest.fixture
async def suspended_user(hs, fresh_user, synapse_admin):
    await synapse_admin.set_suspended(hs, fresh_user.user_id, True)
    yield fresh_user
    await synapse_admin.set_suspended(hs, fresh_user.user_id, False)


@pytest.mark.check("account.suspended.barred", "SUSPEND-403")
async def check_suspended_account_is_refused_with_user_suspended(hs, suspended_user):
    """A suspended user changing their display name (an action the spec recommends barring)
    is refused 403 M_USER_SUSPENDED; a server that allows it is recorded, not failed."""
    user = suspended_user
    path = f"{V3}/profile/{user.user_id}/displayname"
    resp = await hs.request(
        "PUT",
        path,
        json={"displayname": "mxconform suspended"},
        credentials=bearer_header(user.access_token),
    )
    if 200 <= resp.status_code < 300:
        observe("the server lets a suspended user change their display name (its choice)")
        return
    expect(resp, match.status(403), match.errcode("M_USER_SUSPENDED"))
