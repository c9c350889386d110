"""Legacy refresh and logout: what happens to tokens and devices afterwards, read back."""

import pytest

from mxconform.errors import NotApplicable, Unsupported
from mxconform.http.credentials import bearer_header
from mxconform.legacy import api as legacy
from mxconform.spec.matchers import body, expect, expect_true, match, require
from mxconform.spec.verdicts import observe

pytestmark = pytest.mark.api("legacy")

MAX_EXPIRY_WAIT_S = 30.0


async def refreshable_login(hs, user):
    resp = await legacy.login_password(hs, user.user_id, user.password, refresh_token=True)
    return granted_refreshable(resp)


def granted_refreshable(resp):
    require(resp, match.status(200), what="a login with refresh_token: true")
    data = body(resp)
    if not isinstance(data.get("refresh_token"), str):
        raise NotApplicable("the server issues no refresh tokens (opting in is server policy)")
    return data


@pytest.mark.check("legacy.refresh.new-pair", "REFRESH-200", "DEVICE-BIND-REFRESH", "REFRESH-NO-AT")
async def check_refresh_gives_a_working_token_on_the_same_device(hs, refresh_session, transport):
    """POST /refresh answers a new access token, bound to the same device."""
    first = await refresh_session.pair(hs)
    resp = await legacy.refresh(hs, first["refresh_token"])
    refresh_session.went_on(resp)
    expect(
        resp,
        match.status(200),
        match.json_key_type("access_token", str, absent_ok=False),
        match.json_key_type("refresh_token", str, absent_ok=True),
    )
    who = await legacy.whoami(hs, transport.credentials(body(resp)["access_token"]))
    expect(
        who,
        match.status(200),
        match.json_key_equal("device_id", first["device_id"]),
        req="DEVICE-BIND-REFRESH",
    )


@pytest.mark.check("legacy.refresh.old-access-token", "REFRESH-OLD-AT")
async def check_old_access_token_after_refresh_is_recorded(hs, refresh_session):
    """After a refresh the server may revoke the old access token at once: recorded."""
    first = await refresh_session.pair(hs)
    resp = await legacy.refresh(hs, first["refresh_token"])
    require(resp, match.status(200), what="the refresh")
    refresh_session.went_on(resp)
    old = await legacy.whoami(hs, bearer_header(first["access_token"]))
    observe(f"the pre-refresh access token answers HTTP {old.status_code}")


async def use_two_refreshes(hs, refresh_session):
    """Refresh twice with one refresh token (the second pair is the session's newest)."""
    first = await refresh_session.pair(hs)
    once = await legacy.refresh(hs, first["refresh_token"])
    refresh_session.went_on(once)
    twice = await legacy.refresh(hs, first["refresh_token"])
    refresh_session.went_on(twice)
    return first, once, twice


@pytest.mark.check("legacy.refresh.grace", "REFRESH-GRACE")
async def check_old_refresh_token_lives_until_the_new_pair_is_used(hs, refresh_session):
    """The old refresh token keeps working until the new pair is used; then it is refused."""
    first, once, twice = await use_two_refreshes(hs, refresh_session)
    require(once, match.status(200), what="the first refresh")
    expect(twice, match.status(200))
    used = await legacy.whoami(hs, bearer_header(body(twice)["access_token"]))
    require(used, match.status(200), what="using the new pair (whoami)")
    after = await legacy.refresh(hs, first["refresh_token"])
    expect(after, match.status_in(range(400, 500), "a 4xx refusal"))


@pytest.mark.check("legacy.refresh.consumed", "REFRESH-401")
async def check_consumed_refresh_token_gets_401(hs, refresh_session):
    """A refresh token that has been used up is refused with 401, as for an unknown one."""
    first, _, twice = await use_two_refreshes(hs, refresh_session)
    require(twice, match.status(200), what="the second refresh (its pair is then used)")
    used = await legacy.whoami(hs, bearer_header(body(twice)["access_token"]))
    require(used, match.status(200), what="using the new pair (whoami)")
    after = await legacy.refresh(hs, first["refresh_token"])
    expect(after, match.status(401))


@pytest.mark.check("legacy.refresh.unknown", "REFRESH-401")
async def check_unknown_refresh_token_is_refused(hs):
    """A refresh token the server never issued gets 401."""
    resp = await legacy.refresh(hs, "mxconform_never_issued_refresh_token")
    expect(resp, match.status(401), match.errcode("M_UNKNOWN_TOKEN"))


@pytest.mark.check("legacy.token.expired", "TOKEN-UNKNOWN", "TOKEN-EXPIRED")
async def check_expired_token_is_soft_logged_out(hs, expiring_login, transport):
    """An expired access token gets 401 M_UNKNOWN_TOKEN, preferably with soft_logout true."""
    first = granted_refreshable(expiring_login.response)
    lifetime_s = first.get("expires_in_ms", 0) / 1000
    if not 0 < lifetime_s <= MAX_EXPIRY_WAIT_S:
        raise Unsupported(
            f"access tokens live {lifetime_s:g}s, over the {MAX_EXPIRY_WAIT_S:g}s budget", "budget"
        )
    await expiring_login.wait(lifetime_s + 0.5)  # its clock started with the target's first check
    resp = await legacy.whoami(hs, transport.credentials(first["access_token"]))
    expect(resp, match.status(401), match.errcode("M_UNKNOWN_TOKEN"))
    expect(resp, match.json_key_equal("soft_logout", True), req="TOKEN-EXPIRED")


@pytest.mark.check("legacy.logout.device-gone", "LOGOUT-1")
async def check_logout_revokes_the_token_and_deletes_the_device(hs, fresh_user, transport):
    """POST /logout answers 200; the token is refused afterwards and its device is gone."""
    other = await legacy.login_password(hs, fresh_user.user_id, fresh_user.password)
    require(other, match.status(200), what="logging in a device to log out")
    device = body(other)["device_id"]
    resp = await legacy.logout(hs, transport.credentials(body(other)["access_token"]))
    expect(resp, match.status(200))
    after = await legacy.whoami(hs, bearer_header(body(other)["access_token"]))
    expect(after, match.status(401), match.errcode("M_UNKNOWN_TOKEN"))
    listed = await legacy.devices(hs, bearer_header(fresh_user.access_token))
    expect(listed, match.status(200))
    expect_true(
        device not in legacy.device_ids(listed),
        "the device is gone from /devices",
        expected=f"{device} absent",
        observed=sorted(legacy.device_ids(listed)),
    )


@pytest.mark.destructive  # logs out every device of the account, not only ours
@pytest.mark.check("legacy.logout.all", "LOGOUT-ALL")
async def check_logout_all_revokes_every_token(hs, fresh_user, transport):
    """POST /logout/all answers 200 and every token of the user is refused afterwards."""
    other = await legacy.login_password(hs, fresh_user.user_id, fresh_user.password)
    require(other, match.status(200), what="logging in a second device")
    resp = await legacy.logout_all(hs, transport.credentials(body(other)["access_token"]))
    expect(resp, match.status(200))
    for token in (fresh_user.access_token, body(other)["access_token"]):
        after = await legacy.whoami(hs, bearer_header(token))
        expect(after, match.status(401), match.errcode("M_UNKNOWN_TOKEN"))


async def logged_out_tokens_are_dead(hs, session):
    """Read back both tokens of a logged-out session: the access token is refused, and the
    refresh token no longer refreshes."""
    after = await legacy.whoami(hs, bearer_header(session["access_token"]))
    expect(after, match.status(401), match.errcode("M_UNKNOWN_TOKEN"))
    refreshed = await legacy.refresh(hs, session["refresh_token"])
    expect(refreshed, match.status_in(range(400, 500), "a 4xx refusal: the refresh token is gone"))


@pytest.mark.check("legacy.logout.refresh-token", "LOGOUT-1", "REFRESH-200")
async def check_logout_ends_a_session_with_a_refresh_token(hs, fresh_user, transport):
    """POST /logout of a session holding a refresh token: both its access token and its
    refresh token stop working."""
    session = await refreshable_login(hs, fresh_user)
    resp = await legacy.logout(hs, transport.credentials(session["access_token"]))
    expect(resp, match.status(200))
    await logged_out_tokens_are_dead(hs, session)


@pytest.mark.destructive  # logs out every device of the account, not only ours
@pytest.mark.check("legacy.logout.all-refresh-token", "LOGOUT-ALL", "REFRESH-200")
async def check_logout_all_ends_sessions_with_refresh_tokens(hs, fresh_user, transport):
    """POST /logout/all, sent with the token the account was registered with: every
    session's tokens stop working, the access and refresh tokens of another session
    included."""
    session = await refreshable_login(hs, fresh_user)
    resp = await legacy.logout_all(hs, transport.credentials(fresh_user.access_token))
    expect(resp, match.status(200))
    await logged_out_tokens_are_dead(hs, session)
    after = await legacy.whoami(hs, bearer_header(fresh_user.access_token))
    expect(after, match.status(401), match.errcode("M_UNKNOWN_TOKEN"))


@pytest.mark.check("legacy.refresh.chain", "REFRESH-200")
async def check_refresh_chain_works_to_the_end(hs, refresh_session):
    """Refresh, use the new token, refresh again with the *returned* refresh token, use again."""
    first = await refresh_session.pair(hs)
    once = await legacy.refresh(hs, first["refresh_token"])
    refresh_session.went_on(once)
    expect(once, match.status(200), match.json_key_type("access_token", str, absent_ok=False))
    used = await legacy.whoami(hs, bearer_header(body(once)["access_token"]))
    expect(used, match.status(200), match.json_key_equal("device_id", first["device_id"]))
    returned = body(once).get("refresh_token")
    if not isinstance(returned, str):
        raise NotApplicable("the refresh returned no new refresh token (the old one stays in use)")
    twice = await legacy.refresh(hs, returned)
    refresh_session.went_on(twice)
    expect(twice, match.status(200), match.json_key_type("access_token", str, absent_ok=False))
    again = await legacy.whoami(hs, bearer_header(body(twice)["access_token"]))
    expect(again, match.status(200), match.json_key_equal("device_id", first["device_id"]))


@pytest.mark.check("legacy.txn.device-scope", "TXN-DEVICE-SCOPE")
async def check_transaction_id_survives_a_refresh(hs, refresh_session):
    """A txnId reused after /refresh (same device) replays the first event; on another
    device (the one the account was registered with) the same txnId is a new request."""
    first = await refresh_session.pair(hs)
    creds = bearer_header(first["access_token"])
    room = await hs.request("POST", "/_matrix/client/v3/createRoom", json={}, credentials=creds)
    require(room, match.status(200), what="creating a private room of the check's own")
    path = f"/_matrix/client/v3/rooms/{body(room)['room_id']}/send/m.room.message/mxconform-txn-1"
    event = {"msgtype": "m.text", "body": "mxconform transaction test"}
    sent = await hs.request("PUT", path, json=event, credentials=creds)
    require(sent, match.status(200), what="sending an event with a txnId")
    refreshed = await legacy.refresh(hs, first["refresh_token"])
    require(refreshed, match.status(200), what="the refresh")
    refresh_session.went_on(refreshed)
    resent = await hs.request(
        "PUT", path, json=event, credentials=bearer_header(body(refreshed)["access_token"])
    )
    expect(resent, match.status(200), match.json_key_equal("event_id", body(sent)["event_id"]))
    other = bearer_header(refresh_session.user.access_token)
    joined = await hs.request("PUT", path, json=event, credentials=other)
    require(joined, match.status(200), what="the same txnId from another device")
    expect_true(
        body(joined).get("event_id") != body(sent)["event_id"],
        "another device's txnId is a new request (a new event)",
        expected=f"an event_id other than {body(sent)['event_id']}",
        observed=body(joined).get("event_id"),
    )
