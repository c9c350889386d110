"""OpenID Connect where the OAuth 2.0 API offers it: not Matrix rules, but what clients built
on OIDC libraries need of it (matrix-js-sdk 41's oidc-client-ts refused a token response
that granted `openid` without an ID token, issue 25; OIDC discovery validators refuse a
document without `jwks_uri`). Each rule is an `interop` row: INFO when broken, never FAIL."""

import pytest

from mxconform.errors import NotApplicable, PreconditionFailed
from mxconform.oauth.client import new_device_id, scope_for
from mxconform.oauth.oidc import (
    DISCOVERY_PATH,
    OPENID,
    expect_interop,
    is_jws,
    missing_discovery_fields,
    openid_configuration,
)
from mxconform.spec.matchers import body, match, require

pytestmark = pytest.mark.api("oauth")


@pytest.mark.check("oauth.oidc.id-token", "OAUTH-OIDC-ID-TOKEN")
async def check_a_grant_of_openid_carries_an_id_token(hs, oauth_users, account):
    """A code grant that grants `openid` answers with an ID token, as OpenID Connect Core
    1.0 §3.1.3.3 requires and OIDC client libraries insist."""
    device = new_device_id()
    grant = await oauth_users.code_grant(
        hs, account, device_id=device, scope=scope_for(device, OPENID)
    )
    error = grant.params.get("error")
    if error == "invalid_scope":
        raise NotApplicable("the server does not grant the openid scope (invalid_scope)")
    if grant.exchange is None:
        raise PreconditionFailed(
            f"precondition failed: the authorisation asking for openid ended without a code "
            f"(error {error!r})"
        )
    require(grant.exchange, match.status(200), what="the code exchange of a grant with openid")
    data = body(grant.exchange) or {}
    granted = str(data.get("scope") or grant.request.scope).split()
    if OPENID not in granted:
        raise NotApplicable(f"the server did not grant openid (it granted {data.get('scope')!r})")
    token = data.get("id_token")
    expect_interop(
        is_jws(token),
        "the token response grants openid but carries no ID token (OpenID Connect Core 1.0 "
        "§3.1.3.3: REQUIRED); OIDC client libraries (oidc-client-ts) refuse it",
        req="OAUTH-OIDC-ID-TOKEN",
        resp=grant.exchange,
        expected="id_token: a signed JWT",
        observed="absent" if token is None else f"id_token of type {type(token).__name__}",
    )


@pytest.mark.check("oauth.oidc.discovery", "OAUTH-OIDC-DISCOVERY")
async def check_openid_discovery_document_has_what_oidc_requires(hs, oauth_metadata):
    """Where the issuer serves an OpenID discovery document, it names that issuer and has
    every field OpenID Connect Discovery 1.0 §3 marks REQUIRED (`jwks_uri` among them)."""
    issuer = oauth_metadata.get("issuer")
    if not isinstance(issuer, str) or not issuer.startswith(("http://", "https://")):
        raise PreconditionFailed(f"precondition failed: the server metadata's issuer {issuer!r}")
    resp = await openid_configuration(hs, issuer, oauth_metadata)
    document = body(resp)
    if resp.status_code != 200 or not isinstance(document, dict):
        raise NotApplicable(
            f"the server serves no OpenID discovery document ({DISCOVERY_PATH} at the issuer "
            f"answers HTTP {resp.status_code})",
            "feature",
        )
    missing = missing_discovery_fields(document, issuer)
    expect_interop(
        not missing,
        f"the OpenID discovery document lacks what OpenID Connect Discovery 1.0 requires: "
        f"{', '.join(missing)}; OIDC discovery validators refuse it",
        req="OAUTH-OIDC-DISCOVERY",
        resp=resp,
        expected="issuer (the one fetched for) and every REQUIRED field",
        observed=missing,
    )
