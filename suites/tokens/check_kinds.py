"""The token rules for every kind of token an API issues, since each kind can come from
different server code: a legacy login with and without `refresh_token`, a registration
through `/register`, a `/refresh`; an OAuth token from the login driver's grant and one from
the refresh grant. Each kind's token must name its owner and device, and stop working once
its session is ended (a legacy logout, an OAuth revocation)."""

from dataclasses import dataclass, field

import pytest

from mxconform.errors import NotApplicable, Unsupported
from mxconform.http.credentials import bearer_header
from mxconform.legacy import api as legacy
from mxconform.oauth.client import token_set
from mxconform.oauth.revocation import refusal_delay
from mxconform.spec.matchers import body, expect, match, require
from mxconform.spec.verdicts import unmet

LEGACY_KINDS = ("login", "login-refreshable", "register", "refresh")
OAUTH_KINDS = ("grant", "refresh")


@dataclass(frozen=True)
class Issued:
    user_id: str
    device_id: str | None
    access_token: str = field(repr=False)
    client_id: str | None = None


def _issued(resp, what: str) -> Issued:
    require(resp, match.status(200), match.json_keys_present("access_token"), what=what)
    data = body(resp)
    return Issued(data.get("user_id"), data.get("device_id"), data["access_token"])


async def _register(hs, legacy_users) -> Issued:
    """A registration through /register's UIA with only the dummy stage (SKIP otherwise)."""
    name, password = legacy_users.registration("kind")
    request = {"username": name, "password": password}
    first = await legacy.register(hs, request)
    auth = legacy.dummy_stage(first)
    if auth is None:
        raise Unsupported(f"/register offers no dummy-only flow (HTTP {first.status_code})")
    done = await legacy.register(hs, {**request, "auth": auth})
    issued = _issued(done, "a registration through /register")
    legacy_users.adopt(issued.user_id, password)
    return issued


async def issue_legacy(hs, kind: str, fresh_user, legacy_users) -> Issued:
    if kind == "register":
        return await _register(hs, legacy_users)
    refreshable = kind != "login"
    resp = await legacy.login_password(
        hs, fresh_user.user_id, fresh_user.password, refresh_token=refreshable
    )
    issued = _issued(resp, f"a password login{' with refresh_token: true' if refreshable else ''}")
    if kind != "refresh":
        return issued
    refresh_token = body(resp).get("refresh_token")
    if not isinstance(refresh_token, str):
        raise NotApplicable("the server issues no refresh tokens (opting in is server policy)")
    again = await legacy.refresh(hs, refresh_token)
    renewed = _issued(again, "POST /refresh")
    return Issued(issued.user_id, issued.device_id, renewed.access_token)


async def refreshed(hs, refresh_session) -> Issued:
    """An access token from POST /refresh, on the shared refresh session's device."""
    first = await refresh_session.pair(hs)
    again = await legacy.refresh(hs, first["refresh_token"])
    refresh_session.went_on(again)
    renewed = _issued(again, "POST /refresh")
    return Issued(refresh_session.user.user_id, first.get("device_id"), renewed.access_token)


@pytest.mark.api("legacy")
@pytest.mark.parametrize("kind", LEGACY_KINDS)
@pytest.mark.check("tokens.kind.whoami", "WHOAMI-200", "DEVICE-BIND")
async def check_each_kind_of_token_names_its_owner(
    hs, fresh_user, legacy_users, kind, transport, shared_setup, refresh_session
):
    """whoami with a token of this kind answers its user and the device it was issued for.
    Both transports ask with the same token (whoami changes nothing): one login, not two;
    a refresh-issued token comes from the refresh checks' shared session (no login)."""

    async def issue(client):
        if kind == "refresh":
            return await refreshed(client, refresh_session)
        return await issue_legacy(client, kind, fresh_user, legacy_users)

    issued = await shared_setup.get(f"a token of kind {kind}", hs, issue)
    resp = await legacy.whoami(hs, transport.credentials(issued.access_token))
    expect(resp, match.status(200), match.json_key_equal("user_id", issued.user_id))
    # whoami's device_id is the device associated with the token (whoami.yaml: required
    # when there is one): a wrong one breaks WHOAMI-200, as in tokens.whoami.identity
    expect(resp, match.json_key_equal("device_id", issued.device_id), req="WHOAMI-200")


@pytest.mark.api("legacy")
@pytest.mark.parametrize("kind", LEGACY_KINDS)
@pytest.mark.check("tokens.kind.logged-out", "LOGOUT-1", "TOKEN-UNKNOWN")
async def check_each_kind_of_token_ends_with_logout(hs, fresh_user, legacy_users, kind):
    """POST /logout with a token of this kind ends it: afterwards 401 M_UNKNOWN_TOKEN."""
    issued = await issue_legacy(hs, kind, fresh_user, legacy_users)
    resp = await legacy.logout(hs, bearer_header(issued.access_token))
    expect(resp, match.status(200))
    after = await legacy.whoami(hs, bearer_header(issued.access_token))
    expect(after, match.status(401), match.errcode("M_UNKNOWN_TOKEN"), req="TOKEN-UNKNOWN")


async def issue_oauth(hs, kind: str, oauth_users, oauth, account) -> Issued:
    login = await oauth_users.login(hs, account, f"token kind {kind}")
    issued = Issued(account.user_id, login.device_id, login.tokens.access_token, login.client_id)
    if kind != "refresh":
        return issued
    if not login.tokens.refresh_token or login.client_id is None:
        raise NotApplicable(f"the {login.grant} login issued no refresh token to use")
    resp = await oauth.refresh(login.client_id, login.tokens.refresh_token)
    tokens = token_set(resp)
    require(resp, match.status(200), what="the refresh grant")
    assert tokens is not None
    oauth_users.track(login, tokens)
    return Issued(account.user_id, login.device_id, tokens.access_token, login.client_id)


@pytest.mark.api("oauth")
@pytest.mark.parametrize("kind", OAUTH_KINDS)
@pytest.mark.check("oauth.tokens.kind.whoami", "WHOAMI-OAUTH", "WHOAMI-200")
async def check_each_kind_of_oauth_token_names_its_owner(
    hs, oauth_users, oauth, account, kind, transport
):
    """whoami with an OAuth token of this kind answers its user and the device its scope
    named."""
    issued = await issue_oauth(hs, kind, oauth_users, oauth, account)
    resp = await legacy.whoami(hs, transport.credentials(issued.access_token))
    expect(resp, match.status(200), match.json_key_equal("user_id", issued.user_id))
    if issued.device_id is not None:
        expect(resp, match.json_key_equal("device_id", issued.device_id), req="WHOAMI-OAUTH")


@pytest.mark.api("oauth")
@pytest.mark.parametrize("kind", OAUTH_KINDS)
@pytest.mark.check("oauth.tokens.kind.revoked", "OAUTH-REVOKE-PAIR", "OAUTH-REVOKE-REQ")
async def check_each_kind_of_oauth_token_ends_with_revocation(
    hs, oauth_users, oauth, account, kind, grace
):
    """Revoking an OAuth access token of this kind ends it: the homeserver refuses it (401)
    within the configured grace."""
    issued = await issue_oauth(hs, kind, oauth_users, oauth, account)
    if issued.client_id is None:
        raise Unsupported("the driver's tokens belong to no client the harness registered")
    resp = await oauth.revoke(issued.client_id, issued.access_token, "access_token")
    expect(resp, match.status(200), req="OAUTH-REVOKE-REQ")
    delay, status = await refusal_delay(hs, issued.access_token, grace)
    if delay is None:
        unmet(
            f"the homeserver still accepts the revoked access token after {grace:g}s",
            req="OAUTH-REVOKE-PAIR",
            expected=f"401 within {grace:g}s",
            observed=f"HTTP {status}",
        )
