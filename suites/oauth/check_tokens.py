"""Tokens from the OAuth 2.0 API work on ordinary endpoints, through both transports (the
query parameter only where the evaluated spec version still has it)."""

import pytest

from mxconform.legacy.probes import AUTHENTICATED_PROBES, WHOAMI
from mxconform.spec.matchers import expect, match

pytestmark = pytest.mark.api("oauth")


@pytest.mark.parametrize("probe", AUTHENTICATED_PROBES, ids=lambda p: p.id)
@pytest.mark.check("oauth.tokens.accepted", "OAUTH-SCOPE-API")
async def check_oauth_token_works_on_ordinary_endpoints(hs, oauth_user, transport, probe):
    """An OAuth access token with the API scope is accepted like a legacy token."""
    resp = await probe.send(
        hs, oauth_user.account.user_id, transport.credentials(oauth_user.tokens.access_token)
    )
    expect(resp, match.status(200))


@pytest.mark.check("oauth.tokens.whoami", "OAUTH-SCOPE-API", "WHOAMI-200", "WHOAMI-OAUTH")
async def check_whoami_names_the_oauth_user_and_device(hs, oauth_user, transport):
    """whoami with an OAuth token names its user and the device from its scope."""
    resp = await WHOAMI.send(
        hs, oauth_user.account.user_id, transport.credentials(oauth_user.tokens.access_token)
    )
    expect(resp, match.status(200), match.json_key_equal("user_id", oauth_user.account.user_id))
    if oauth_user.device_id:
        expect(
            resp,
            match.json_key_equal("device_id", oauth_user.device_id),
            req="OAUTH-SCOPE-DEVICE-ONE",
        )
