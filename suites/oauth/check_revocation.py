"""Token revocation (RFC 7009): revoking either token ends the pair, at the token endpoint
and at the homeserver (which may cache introspection for a while: the delay is noted)."""

import pytest

from mxconform.oauth.revocation import refusal_delay
from mxconform.spec.matchers import expect, expect_true, match
from mxconform.spec.verdicts import note

pytestmark = pytest.mark.api("oauth")


@pytest.mark.parametrize("which", ["access-token", "refresh-token"])
@pytest.mark.check("oauth.revoke.pair", "OAUTH-REVOKE-PAIR", "OAUTH-REVOKE-REQ")
async def check_revoking_one_token_ends_the_pair(hs, oauth, grant, grace, which):
    """Revoking the access (or refresh) token makes both unusable: the refresh grant fails
    and the homeserver refuses the access token within the configured grace."""
    tokens = grant.login.tokens
    hint = which.replace("-", "_")  # the RFC 7009 token_type_hint
    revoked = await oauth.revoke(grant.login.client_id, getattr(tokens, hint), hint)
    expect(revoked, match.status(200), req="OAUTH-REVOKE-REQ")
    refresh = await oauth.refresh(
        grant.login.client_id, tokens.refresh_token, "refresh after revocation"
    )
    expect(refresh, match.status_in(range(400, 500), "a 4xx"))
    delay, status = await refusal_delay(hs, tokens.access_token, grace)
    expect_true(
        delay is not None,
        f"the homeserver still accepts the revoked pair's access token after {grace:g}s",
        expected=f"401 within {grace:g}s",
        observed=f"HTTP {status}",
    )
    note(f"the homeserver refused the access token {delay:.1f}s after revocation")


@pytest.mark.check("oauth.revoke.unknown-token", "OAUTH-REVOKE-STATUS")
async def check_revoking_an_unknown_token_is_200(hs, oauth, oauth_users):
    """Revoking a token that is not (or no longer) valid answers 200."""
    resp = await oauth.revoke(await oauth_users.client_id(hs), "mxconform-never-issued-token")
    expect(resp, match.status(200))


@pytest.mark.check("oauth.revoke.missing-token", "OAUTH-REVOKE-REQ")
async def check_revocation_without_token_is_invalid_request(hs, oauth, oauth_users):
    """A revocation request without `token` is a 400 invalid_request."""
    resp = await oauth.revoke(await oauth_users.client_id(hs), None, note="no token")
    expect(resp, match.status(400), match.oauth_error("invalid_request"))


@pytest.mark.check("oauth.revoke.any-client", "OAUTH-REVOKE-ANY-CLIENT", "OAUTH-REVOKE-PAIR")
async def check_revocation_without_client_id_is_honoured(hs, oauth, grant):
    """A revocation that names no `client_id` is still honoured: the refresh grant then fails."""
    tokens = grant.login.tokens
    revoked = await oauth.revoke(None, tokens.refresh_token, "refresh_token", note="no client_id")
    expect(revoked, match.status(200))
    refresh = await oauth.refresh(
        grant.login.client_id, tokens.refresh_token, "refresh after revocation"
    )
    expect(refresh, match.status_in(range(400, 500), "a 4xx"))
