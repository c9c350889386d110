"""What the legacy login endpoints answer on a target that offers only the OAuth 2.0 API.

Servers that support OAuth-aware clients (v1.18) keep m.login.sso with
`oauth_aware_preferred`; otherwise the spec is silent and the answers are recorded.
"""

import pytest

from mxconform.errors import NotApplicable
from mxconform.http.credentials import NO_CREDENTIALS, bearer_header
from mxconform.legacy import api as legacy
from mxconform.spec.matchers import body, expect_true
from mxconform.spec.verdicts import observe

pytestmark = pytest.mark.api("oauth")


@pytest.mark.check(
    "oauth.legacy.login-flows", "OAUTHAWARE-PREFERRED", "OAUTHAWARE-SSO", "DISC-BOTH"
)
async def check_login_flows_on_an_oauth_target(hs, target):
    """GET /login: an OAuth-aware m.login.sso flow carries oauth_aware_preferred; anything
    else is recorded."""
    if target.target.offers("legacy"):
        raise NotApplicable(
            "the target also declares the legacy API (its own suite covers /login)", "api"
        )
    resp = await legacy.login_flows(hs)
    flows = (body(resp) or {}).get("flows") if resp.status_code == 200 else None
    sso = [f for f in flows or [] if isinstance(f, dict) and f.get("type") == "m.login.sso"]
    if not sso:
        observe(
            f"GET /login answers HTTP {resp.status_code} with no m.login.sso flow: "
            "the server does not offer the OAuth-aware compatibility mode"
        )
        return
    expect_true(
        sso[0].get("oauth_aware_preferred") is True,
        "m.login.sso on an OAuth server lacks oauth_aware_preferred: true",
        observed=sso[0],
    )


@pytest.mark.parametrize("endpoint", ["login", "register", "refresh", "logout"])
@pytest.mark.check("oauth.legacy.endpoint", "DISC-BOTH")
async def check_legacy_endpoint_answer_is_recorded(
    hs, oauth_users, oauth_account, target, endpoint
):
    """What POST /login, /register, /refresh and /logout answer on an OAuth-only target
    (the spec does not say): recorded, with an OAuth token where one applies."""
    if target.target.offers("legacy"):
        raise NotApplicable(
            "the target also declares the legacy API (its own suite covers it)", "api"
        )
    creds = NO_CREDENTIALS
    if endpoint == "logout":  # a login of this check alone: logging it out harms nothing
        login = await oauth_users.login(hs, oauth_account, "a device to try /logout with")
        creds = bearer_header(login.tokens.access_token)
    resp = await legacy.post_endpoint(hs, endpoint, creds)
    data = body(resp) or {}
    observe(f"POST /{endpoint}: HTTP {resp.status_code} {data.get('errcode', '')}".strip())
    if endpoint == "logout" and resp.status_code == 200:
        observe("an OAuth token was logged out through the legacy /logout")
