"""OAuth tokens on UIA endpoints: refused, and the refused operation provably did not happen.

The spec (v1.15) says UIA endpoints cannot be used with tokens from the OAuth 2.0 API. For
each UIA operation a fresh account with a fresh OAuth login tries it, once without `auth`
and once with a password stage attached; follow-up reads then show whether anything changed.
A 2xx is FAIL either way: if state changed the refusal rule is broken, and if nothing
changed the answer is a false success (each endpoint's 2xx says the operation was done).
"""

import pytest

from mxconform.errors import Unsupported
from mxconform.legacy import api as legacy
from mxconform.legacy.uia import (
    cross_signing_keys,
    master_key_id,
    stored_master_key,
    upload_cross_signing,
)
from mxconform.oauth.uia import OAUTH_UIA_OPERATIONS
from mxconform.plugin.checks import OAUTH_DESTRUCTIVE_REASON
from mxconform.spec.matchers import (
    body,
    expect,
    expect_true,
    expect_uia_challenge,
    match,
    require,
)
from mxconform.spec.verdicts import note, precondition, unmet

pytestmark = pytest.mark.api("oauth")

every = pytest.mark.parametrize("operation", OAUTH_UIA_OPERATIONS, ids=str)


async def attempt(hs, oauth_users, oauth_account, operation, with_password):
    if operation.destructive and not oauth_users.may_destroy:
        raise Unsupported(OAUTH_DESTRUCTIVE_REASON, "policy")
    with precondition(f"an OAuth login and {operation}'s subject"):
        login = await oauth_users.login(hs, oauth_account, f"uia refusal: {operation}")
        prepared = await operation.prepare(hs, oauth_users, login)
    auth = None
    if with_password:
        password = oauth_account.password or "mxconform-not-the-password"
        auth = legacy.password_auth(oauth_account.user_id, password, None)
    resp = await prepared.send(hs, auth)
    took, seen = await prepared.took_effect()
    issued = operation.id == "get-login-token" and "login_token" in (body(resp) or {})
    note(f"{operation}: HTTP {resp.status_code} {(body(resp) or {}).get('errcode', '')}".strip())
    expect_true(
        not took and not issued,
        f"{operation} with an OAuth token took effect (HTTP {resp.status_code}): {seen}"
        + ("; a login_token was issued" if issued else ""),
        expected="refused, state unchanged",
        observed=seen,
    )
    if 200 <= resp.status_code < 300:
        unmet(
            f"{operation} answered HTTP {resp.status_code} to an OAuth token: not a refusal, "
            f"and a false success, since read back nothing changed ({seen}) while the "
            f"endpoint's {resp.status_code} means the operation was done ({operation.requirement})",
            req="OAUTH-UIA-INCOMPAT",
            expected="a refusal (4xx), state unchanged",
            observed=f"HTTP {resp.status_code}; {seen}",
        )


@every
@pytest.mark.check("oauth.uia.refused", "OAUTH-UIA-INCOMPAT")
async def check_oauth_token_cannot_use_uia_endpoint(hs, oauth_users, oauth_account, operation):
    """A UIA operation tried with an OAuth token is refused and, read back, did not happen."""
    await attempt(hs, oauth_users, oauth_account, operation, with_password=False)


@every
@pytest.mark.check("oauth.uia.refused-with-password", "OAUTH-UIA-INCOMPAT")
async def check_password_stage_does_not_unlock_uia(hs, oauth_users, oauth_account, operation):
    """Attaching an m.login.password stage does not let an OAuth token through either."""
    await attempt(hs, oauth_users, oauth_account, operation, with_password=True)


async def replace_keys(hs, oauth_users, oauth_account):
    if not oauth_users.may_destroy:
        raise Unsupported(OAUTH_DESTRUCTIVE_REASON, "policy")
    login = await oauth_users.login(hs, oauth_account, "m.oauth: replace cross-signing keys")
    first = await upload_cross_signing(hs, login.session, cross_signing_keys(login.account.user_id))
    require(first, match.status(200), what="the first cross-signing upload (no UIA, v1.11 on)")
    replacement = cross_signing_keys(login.account.user_id)
    resp = await upload_cross_signing(hs, login.session, replacement)
    expect_uia_challenge(resp)
    data = body(resp) or {}
    stages = [s for f in data.get("flows", []) for s in f.get("stages", [])]
    url = ((data.get("params") or {}).get("m.oauth") or {}).get("url")
    expect_true(
        "m.oauth" in stages and isinstance(url, str) and url.startswith(("http://", "https://")),
        "replacing cross-signing keys with an OAuth token does not offer m.oauth with an "
        f"http(s) url (stages {stages}, url {url!r})",
        expected='a flow with m.oauth and params["m.oauth"].url',
        observed={"stages": stages, "url": url},
    )
    return login, replacement, data.get("session"), url


@pytest.mark.check("oauth.uia.m-oauth.challenge", "OAUTH-UIA-MOAUTH", "OAUTH-UIA-MOAUTH-SCOPE")
async def check_cross_signing_reset_asks_for_m_oauth(hs, oauth_users, oauth_account):
    """Replacing cross-signing keys with an OAuth token answers 401 with an m.oauth stage
    pointing into the account management UI; the keys stay as they were."""
    login, replacement, _, url = await replace_keys(hs, oauth_users, oauth_account)
    note(f"approval URL: {url}")
    stored = await stored_master_key(hs, login.session)
    expect_true(
        stored != master_key_id(replacement),
        "the challenged upload replaced the keys anyway",
        expected="the old master key",
        observed=stored,
    )


@pytest.mark.check("oauth.uia.m-oauth.approved", "OAUTH-UIA-MOAUTH")
async def check_cross_signing_reset_succeeds_after_approval(hs, oauth_users, oauth_account):
    """After the user approves at the m.oauth URL, the retry with the session succeeds and
    the new keys are stored."""
    login, replacement, session, url = await replace_keys(hs, oauth_users, oauth_account)
    await oauth_users.driver.approve(oauth_account, url, hs.recorder)
    auth = {"session": session} if session else {"type": "m.oauth"}
    retry = await upload_cross_signing(hs, login.session, replacement, auth)
    expect(retry, match.status(200))
    stored = await stored_master_key(hs, login.session)
    expect_true(
        stored == master_key_id(replacement),
        "after approval the new master key is not stored",
        expected=master_key_id(replacement),
        observed=stored,
    )
