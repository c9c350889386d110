"""CORS on the OAuth 2.0 endpoints a browser client calls: a web client (Element Web) runs on
its own origin, and without CORS it cannot register, exchange a code, refresh, revoke or ask
for a device code, whatever the homeserver's own CORS headers say (`general.cors.headers`).
A preflight carries no credential, so it may go to any endpoint the metadata names."""

import pytest

from mxconform.errors import NotApplicable
from mxconform.http.credentials import NO_CREDENTIALS
from mxconform.spec.matchers import expect_true

pytestmark = pytest.mark.api("oauth")

ORIGIN = "https://web-client.mxconform.invalid"


# The endpoints, by the check's id for each (the metadata names it `<id>_endpoint`); every
# request a browser client sends them has a body, so a Content-Type the preflight must allow.
ENDPOINTS = ("registration", "token", "revocation", "device-authorization")
HEADER = "content-type"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.check("oauth.cors.preflight", "OAUTH-CORS")
async def check_oauth_endpoint_answers_a_cors_preflight(hs, oauth_metadata, endpoint):
    """The endpoint answers a browser's preflight 2xx, allowing the client's origin, the
    POST it will send and the headers it adds."""
    key = endpoint.replace("-", "_") + "_endpoint"
    url = oauth_metadata.get(key)
    if not isinstance(url, str):
        raise NotApplicable(f"the server metadata names no {key}")
    resp = await hs.request(
        "OPTIONS",
        url,
        credentials=NO_CREDENTIALS,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": HEADER,
        },
    )
    origin = resp.headers.get("access-control-allow-origin")
    methods = resp.headers.get("access-control-allow-methods", "").upper()
    listed = resp.headers.get("access-control-allow-headers", "")
    allowed = {h.strip().lower() for h in listed.split(",")}
    expect_true(
        200 <= resp.status_code < 300
        and origin in ("*", ORIGIN)
        and ("POST" in methods or methods == "*")
        and (HEADER in allowed or "*" in allowed),
        f"a browser client on another origin cannot call {key}: the preflight "
        f"answered HTTP {resp.status_code} without allowing its origin, POST and {HEADER}",
        expected=f"2xx; Allow-Origin * or {ORIGIN}; POST; {HEADER}",
        observed={
            "status": resp.status_code,
            "allow-origin": origin,
            "allow-methods": methods,
            "allow-headers": sorted(allowed - {""}),
        },
    )
