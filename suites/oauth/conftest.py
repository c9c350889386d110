"""Arrangements the OAuth checks share."""

import pytest

from mxconform.spec.matchers import expect, match


@pytest.fixture
def account(oauth_user):
    """The run's main OAuth account, for checks that change nothing about the account: its
    user agent is already logged in, so a real MAS sees one password login, not one per check
    (MAS limits password checks to a few per minute)."""
    return oauth_user.account


@pytest.fixture
async def grant(hs, oauth_users, account):
    """A fresh code grant of this check alone; it must have issued a refresh token."""
    grant = await oauth_users.code_grant(hs, account)
    expect(grant.exchange, match.status(200), req="OAUTH-TOKEN-AC")
    expect(
        grant.exchange,
        match.json_key_type("refresh_token", str, absent_ok=False),
        req="OAUTH-TOKEN-REFRESH-ISSUED",
    )
    return grant


@pytest.fixture
def grace(target):
    """How long the homeserver may keep accepting a revoked token (servers.yaml)."""
    return target.target.oauth.revocation_grace_s if target.target.oauth else 10.0
