"""Arrangements the OAuth checks share."""

import pytest

from mxconform.spec.matchers import expect, match


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
