"""CORS on the OAuth 2.0 endpoints a browser client calls: a web client (Element Web) runs on
its own origin, and without CORS it cannot register, exchange a code, refresh, revoke or ask
for a device code, whatever the homeserver's own CORS headers say (`general.cors.headers`).
A preflight carries no credential, so it may go to any endpoint the metadata names."""

from dataclasses import dataclass

import pytest

from mxconform.http.credentials import NO_CREDENTIALS
from mxconform.spec.matchers import expect_true

pytestmark = pytest.mark.api("oauth")

ORIGIN = "https://web-client.mxconform.invalid"


@dataclass(frozen=True)
class Endpoint:
    key: str  # the metadata's field naming it
    headers: str  # what a browser client's request adds (Access-Control-Request-Headers)

    def __str__(self) -> str:
        return self.key.removesuffix("_endpoint").replace("_", "-")


ENDPOINTS = (
    Endpoint("registration_endpoint", "content-type"),  # a JSON body: preflighted
    Endpoint("token_endpoint", "content-type"),
    Endpoint("revocation_endpoint", "content-type"),
    Endpoint("device_authorization_endpoint", "content-type"),
)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
@pytest.mark.check("oauth.cors.preflight", "OAUTH-CORS")
async def check_oauth_endpoint_answers_a_cors_preflight(hs, oauth_metadata, endpoint):
    """The endpoint answers a browser's preflight 2xx, allowing the client's origin, the
    POST it will send and the headers it adds."""
    url = oauth_metadata.get(endpoint.key)
    if not isinstance(url, str):
        pytest.skip(f"the server metadata names no {endpoint.key}")
    resp = await hs.request(
        "OPTIONS",
        url,
        credentials=NO_CREDENTIALS,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": endpoint.headers,
        },
    )
    origin = resp.headers.get("access-control-allow-origin")
    methods = resp.headers.get("access-control-allow-methods", "").upper()
    listed = resp.headers.get("access-control-allow-headers", "")
    allowed = {h.strip().lower() for h in listed.split(",")}
    wanted = {h.strip() for h in endpoint.headers.split(",")}
    expect_true(
        200 <= resp.status_code < 300
        and origin in ("*", ORIGIN)
        and ("POST" in methods or methods == "*")
        and (wanted <= allowed or "*" in allowed),
        f"a browser client on another origin cannot call {endpoint.key}: the preflight "
        f"answered HTTP {resp.status_code} without allowing its origin, POST and "
        f"{endpoint.headers}",
        expected=f"2xx; Allow-Origin * or {ORIGIN}; POST; {endpoint.headers}",
        observed={
            "status": resp.status_code,
            "allow-origin": origin,
            "allow-methods": methods,
            "allow-headers": sorted(allowed - {""}),
        },
    )
