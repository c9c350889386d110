"""The refresh token grant: a new pair, rotation, and what a re-used refresh token does."""

import pytest

from mxconform.http.credentials import bearer_header
from mxconform.legacy import api as legacy
from mxconform.oauth.client import token_set
from mxconform.oauth.revocation import refusal_delay
from mxconform.spec.matchers import expect, match
from mxconform.spec.verdicts import note, unmet

pytestmark = pytest.mark.api("oauth")


@pytest.mark.check("oauth.refresh.new-pair", "OAUTH-REFRESH-REQ")
async def check_refresh_gives_a_working_new_pair(hs, oauth, oauth_users, grant):
    """Refreshing gives a new access token (which works), a type, an expiry and a new
    refresh token."""
    login = grant.login
    resp = await oauth.refresh(login.client_id, login.tokens.refresh_token)
    expect(
        resp,
        match.status(200),
        match.json_key_type("access_token", str, absent_ok=False),
        match.json_key_type("token_type", str, absent_ok=False),
        match.json_key_type("expires_in", int, absent_ok=False),
        match.json_key_type("refresh_token", str, absent_ok=False),
    )
    fresh = token_set(resp)
    oauth_users.track(login, fresh)
    who = await legacy.whoami(hs, bearer_header(fresh.access_token))
    expect(who, match.status(200), match.json_key_equal("device_id", login.device_id))


@pytest.mark.check("oauth.refresh.retry-allowed", "OAUTH-REFRESH-RETRY")
async def check_refresh_can_be_retried_before_the_new_pair_is_used(hs, oauth, oauth_users, grant):
    """A client whose refresh response was lost can retry with the same refresh token."""
    login = grant.login
    old = login.tokens.refresh_token
    first = await oauth.refresh(login.client_id, old, note="refresh (response 'lost')")
    expect(first, match.status(200), req="OAUTH-REFRESH-REQ")
    oauth_users.track(login, token_set(first))
    retry = await oauth.refresh(login.client_id, old, note="retry with the same refresh token")
    expect(retry, match.status(200))
    oauth_users.track(login, token_set(retry))


@pytest.mark.check("oauth.refresh.rotated", "OAUTH-REFRESH-ROTATE", "OAUTH-REFRESH-REUSE")
async def check_old_refresh_token_dies_once_the_new_pair_is_used(hs, oauth, oauth_users, grant):
    """Once the new pair has been used, the old refresh token SHOULD be refused, and its
    re-use SHOULD end the session."""
    login = grant.login
    old = login.tokens.refresh_token
    first = await oauth.refresh(login.client_id, old)
    expect(first, match.status(200), req="OAUTH-REFRESH-REQ")
    new = token_set(first)
    oauth_users.track(login, new)
    who = await legacy.whoami(hs, bearer_header(new.access_token))
    expect(who, match.status(200), req="OAUTH-REFRESH-REQ")
    newer = await oauth.refresh(
        login.client_id, new.refresh_token, note="use the new refresh token"
    )
    expect(newer, match.status(200), req="OAUTH-REFRESH-REQ")
    newest = token_set(newer)
    oauth_users.track(login, newest)
    reuse = await oauth.refresh(login.client_id, old, note="re-use the first refresh token")
    if reuse.status_code == 200:
        unmet(
            "the first refresh token still works after the pairs that replaced it were used",
            req="OAUTH-REFRESH-ROTATE",
            expected="4xx invalid_grant",
            observed="HTTP 200",
        )
        oauth_users.track(login, token_set(reuse))
        return
    expect(reuse, match.status_in(range(400, 500), "a 4xx"), req="OAUTH-REFRESH-REUSE")
    delay, status = await refusal_delay(hs, newest.access_token, 3.0)
    if delay is None:
        unmet(
            "re-using an invalidated refresh token did not end the session "
            f"(the newest access token still answers HTTP {status})",
            req="OAUTH-REFRESH-REUSE",
            expected="the session revoked",
            observed=f"HTTP {status}",
        )
    else:
        note(f"the session ended {delay:.1f}s after the re-use")
