"""The authorisation code grant with PKCE, and what the token endpoint hands out."""

import pytest

from mxconform.http.credentials import bearer_header
from mxconform.legacy import api as legacy
from mxconform.oauth.client import (
    API_SCOPE,
    REDIRECT_URI,
    UNSTABLE_API_SCOPE,
    device_scopes,
    new_device_id,
)
from mxconform.oauth.drivers.base import DriverError
from mxconform.oauth.revocation import refusal_delay
from mxconform.spec.matchers import body, expect, expect_true, match
from mxconform.spec.verdicts import note, unmet

pytestmark = pytest.mark.api("oauth")

ELSEWHERE = "https://attacker.mxconform.example.net/callback"


@pytest.mark.check(
    "oauth.authz.code-flow", "OAUTH-AC-GRANT", "OAUTH-TOKEN-AC", "OAUTH-AUTHZ-REQUEST"
)
async def check_code_grant_yields_tokens(hs, oauth_users, account):
    """The code grant with S256 PKCE gives a Bearer access token, an expiry, a refresh
    token and the granted scope."""
    grant = await oauth_users.code_grant(hs, account)
    expect(
        grant.exchange,
        match.status(200),
        match.json_key_type("access_token", str, absent_ok=False),
        match.json_key_type("expires_in", int, absent_ok=False),
        req="OAUTH-TOKEN-AC",
    )
    token_type = (body(grant.exchange) or {}).get("token_type")
    expect_true(
        isinstance(token_type, str) and token_type.lower() == "bearer",
        f"token_type is {token_type!r}, not Bearer",
        req="OAUTH-TOKEN-AC",
        observed=token_type,
    )
    expect(
        grant.exchange,
        match.json_key_type("refresh_token", str, absent_ok=False),
        req="OAUTH-TOKEN-REFRESH-ISSUED",
    )
    expect(
        grant.exchange, match.json_key_type("scope", str, absent_ok=False), req="OAUTH-SCOPE-ECHO"
    )


@pytest.mark.check("oauth.authz.state-echoed", "OAUTH-AUTHZ-CALLBACK")
async def check_state_is_echoed(hs, oauth_users, account):
    """The redirect back carries the request's state unchanged."""
    grant = await oauth_users.code_grant(hs, account, exchange=False)
    expect_true(
        grant.params.get("state") == grant.request.state,
        "the callback's state differs from the request's",
        expected=grant.request.state,
        observed=grant.params.get("state"),
    )


@pytest.mark.check("oauth.authz.fragment-mode", "OAUTH-AUTHZ-CALLBACK", "OAUTH-AC-GRANT")
async def check_fragment_response_mode_is_honoured(hs, oauth_users, account):
    """With response_mode=fragment the code comes back in the fragment, not the query."""
    grant = await oauth_users.code_grant(hs, account, exchange=False, response_mode="fragment")
    fragment = grant.callback.partition("#")[2]
    query = grant.callback.partition("?")[2].partition("#")[0]
    expect_true(
        "code=" in fragment and "code=" not in query,
        "the code did not come back in the fragment",
        expected="code in the fragment",
        observed="in the query" if "code=" in query else "absent",
    )


@pytest.mark.check("oauth.authz.loopback-any-port", "OAUTH-REDIR-LOOPBACK")
async def check_loopback_redirect_accepts_any_port(hs, oauth_users, account):
    """A loopback redirect registered without a port is accepted with any port."""
    redirect = "http://127.0.0.1:49152/callback"
    try:
        grant = await oauth_users.code_grant(hs, account, redirect_uri=redirect)
    except DriverError as exc:  # an error page instead of the redirect: refused
        expect_true(False, f"the request with a port was refused: {exc}", observed=str(exc))
    expect_true(
        "code" in grant.params,
        "no code for a loopback redirect with a port",
        observed=grant.params.get("error"),
    )
    expect(grant.exchange, match.status(200))


@pytest.mark.parametrize("pkce", ["none", "plain"])
@pytest.mark.check("oauth.authz.pkce-required", "OAUTH-AC-GRANT")
async def check_weak_or_missing_pkce_is_refused(hs, oauth_users, account, pkce):
    """A request without PKCE, or with `plain`, never ends in tokens."""
    try:
        grant = await oauth_users.code_grant(hs, account, pkce=None if pkce == "none" else "plain")
    except DriverError as exc:
        note(f"refused on the server's pages: {exc}")
        return
    tokens = grant.exchange is not None and grant.exchange.status_code == 200
    expect_true(
        not tokens,
        f"PKCE {pkce}: the grant completed and tokens were issued",
        expected="refused at the authorisation or token endpoint",
        observed=f"token endpoint HTTP {grant.exchange.status_code if grant.exchange else None}",
    )
    if "error" in grant.params:
        note(f"refused with error {grant.params['error']!r}")


@pytest.mark.check("oauth.authz.unregistered-redirect", "OAUTH-REDIR-EXACT")
async def check_unregistered_redirect_is_never_used(hs, oauth_users, account):
    """An authorisation request naming an unregistered redirect URI never sends the user
    agent there (not even with an error)."""
    auth = oauth_users.api(hs).authorization_request(
        await oauth_users.client_id(hs), redirect_uri=ELSEWHERE
    )
    try:
        where = await oauth_users.callback(hs, account, auth)
    except DriverError as exc:
        note(f"stopped on the server's pages: {exc}")
        return
    expect_true(False, f"the server redirected to the unregistered URI: {where}", observed=where)


@pytest.mark.check("oauth.token.wrong-verifier", "OAUTH-AC-GRANT", "OAUTH-PKCE-VERIFIER")
async def check_wrong_code_verifier_is_refused(hs, oauth, oauth_users, account):
    """The token endpoint refuses a code with a verifier that does not match the challenge."""
    grant = await oauth_users.code_grant(hs, account, exchange=False)
    resp = await oauth.exchange_code(grant.request, grant.code, verifier="x" * 64)
    expect(resp, match.status(400), match.oauth_error("invalid_grant", "invalid_request"))


@pytest.mark.check("oauth.token.redirect-must-repeat", "OAUTH-REDIR-EXACT")
async def check_token_request_must_repeat_redirect_uri(hs, oauth, oauth_users, account):
    """The token endpoint refuses a code exchanged with another redirect_uri."""
    grant = await oauth_users.code_grant(hs, account, exchange=False)
    resp = await oauth.exchange_code(
        grant.request, grant.code, redirect_uri=REDIRECT_URI + "/other"
    )
    expect(resp, match.status(400), match.oauth_error("invalid_grant", "invalid_request"))


@pytest.mark.check("oauth.token.code-single-use", "OAUTH-AC-GRANT")
async def check_code_is_single_use(hs, oauth, oauth_users, account, grace):
    """A code works once; re-use is refused and SHOULD revoke what it issued."""
    grant = await oauth_users.code_grant(hs, account)
    expect(grant.exchange, match.status(200))
    again = await oauth.exchange_code(grant.request, grant.code, note="re-use the same code")
    expect(again, match.status(400), match.oauth_error("invalid_grant"))
    delay, status = await refusal_delay(hs, grant.login.tokens.access_token, grace)
    if delay is None:
        unmet(
            "after the code was re-used, the tokens it issued still work "
            f"(whoami HTTP {status} after {grace:g}s)",
            req="OAUTH-CODE-REUSE-REVOKE",
            expected="tokens from the re-used code revoked (RFC 6749 §4.1.2)",
            observed=f"HTTP {status}",
        )
    else:
        note(f"tokens from the re-used code refused after {delay:.1f}s")


@pytest.mark.check("oauth.token.scope", "OAUTH-SCOPE-DEVICE-ONE", "OAUTH-SCOPE-ECHO")
async def check_granted_scope_names_api_and_the_device(hs, oauth_users, account):
    """The granted scope includes the API scope and exactly the requested device."""
    device = new_device_id()
    grant = await oauth_users.code_grant(hs, account, device_id=device)
    expect(grant.exchange, match.status(200), req="OAUTH-TOKEN-AC")
    scope = (body(grant.exchange) or {}).get("scope") or ""
    expect_true(
        API_SCOPE in scope.split() or UNSTABLE_API_SCOPE in scope.split(),
        f"granted scope lacks the API scope: {scope!r}",
        req="OAUTH-SCOPE-API",
        observed=scope,
    )
    expect_true(
        device_scopes(scope) == [device] or sorted(set(device_scopes(scope))) == [device],
        f"granted scope does not name exactly device {device}: {scope!r}",
        observed=scope,
    )


@pytest.mark.check(
    "oauth.token.device-bound", "OAUTH-SCOPE-DEVICE-ONE", "OAUTH-SCOPE-API", "DEVICE-OAUTH-ALLOC"
)
async def check_token_is_bound_to_the_requested_device(hs, oauth_users, account):
    """whoami names the account and the device from the scope, and /devices lists it."""
    device = new_device_id()
    grant = await oauth_users.code_grant(hs, account, device_id=device)
    expect(grant.exchange, match.status(200), req="OAUTH-TOKEN-AC")
    creds = bearer_header(grant.login.tokens.access_token)
    who = await legacy.whoami(hs, creds)
    expect(
        who,
        match.status(200),
        match.json_key_equal("user_id", account.user_id),
        match.json_key_equal("device_id", device),
    )
    listed = await legacy.devices(hs, creds)
    expect_true(
        device in legacy.device_ids(listed),
        f"device {device} is not listed in /devices",
        observed=legacy.device_ids(listed),
    )


@pytest.mark.check("oauth.token.short-lived", "OAUTH-TOKEN-SHORT-LIVED")
async def check_access_token_expires(hs, oauth_users, account):
    """The access token comes with an expiry (it must be short-lived); the lifetime is noted."""
    grant = await oauth_users.code_grant(hs, account)
    expect(grant.exchange, match.json_key_type("expires_in", int, absent_ok=False))
    lifetime = body(grant.exchange)["expires_in"]
    expect_true(lifetime > 0, f"expires_in is {lifetime}", observed=lifetime)
    note(f"access token lifetime: {lifetime} s")
