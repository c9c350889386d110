"""Which authentication APIs a server offers, against what its operator declared.

A declared API that the server does not offer is a FAIL; an API that is not declared is not
required, but the spec asks for a clear 404 M_UNRECOGNIZED then.
"""

import pytest

from mxconform.errors import NotApplicable
from mxconform.http.credentials import NO_CREDENTIALS
from mxconform.spec.matchers import expect, match

LOGIN = "/_matrix/client/v3/login"
AUTH_METADATA = "/_matrix/client/v1/auth_metadata"


@pytest.mark.api("legacy")
@pytest.mark.check("discovery.legacy.offered", "LOGIN-GET-FLOWS")
async def check_declared_legacy_api_lists_login_flows(hs):
    """A target declaring the legacy API lists its login flows at GET /login."""
    resp = await hs.request("GET", LOGIN, credentials=NO_CREDENTIALS)
    expect(resp, match.status(200), match.json_keys_present("flows"))


@pytest.mark.api("oauth")
@pytest.mark.check("discovery.oauth.offered", "OAUTH-META-ENDPOINT")
async def check_declared_oauth_api_serves_metadata(hs):
    """A target declaring the OAuth 2.0 API serves its metadata at auth_metadata."""
    resp = await hs.request("GET", AUTH_METADATA, credentials=NO_CREDENTIALS)
    expect(resp, match.status(200), match.json_keys_present("issuer"))


@pytest.mark.check("discovery.oauth.absent", "DISC-OAUTH-404", "OAUTH-META-404")
async def check_undeclared_oauth_api_answers_unrecognized(hs, target):
    """A server without the OAuth 2.0 API says so with 404 M_UNRECOGNIZED."""
    if target.target.offers("oauth"):
        raise NotApplicable("the OAuth 2.0 API is declared for this target", "api")
    resp = await hs.request("GET", AUTH_METADATA, credentials=NO_CREDENTIALS)
    expect(resp, match.status(404), match.errcode("M_UNRECOGNIZED"))


@pytest.mark.check("discovery.legacy.absent", "DISC-LEGACY-404")
async def check_undeclared_legacy_api_answers_unrecognized(hs, target):
    """A server without the legacy API says so with 404 M_UNRECOGNIZED at GET /login."""
    if target.target.offers("legacy"):
        raise NotApplicable("the legacy API is declared for this target", "api")
    resp = await hs.request("GET", LOGIN, credentials=NO_CREDENTIALS)
    expect(resp, match.status(404), match.errcode("M_UNRECOGNIZED"))
