"""Rules of the API as a whole that an authentication client runs into: unknown endpoints and
methods, CORS preflights and headers, and the `WWW-Authenticate` header the spec leaves open.

These send no token but the main test user's (and only to read), so they are safe anywhere.
"""

import httpx
import pytest

from mxconform.errors import NotApplicable
from mxconform.http.credentials import NO_CREDENTIALS
from mxconform.spec.matchers import expect, expect_true, match, require
from mxconform.spec.verdicts import observe

WHOAMI = "/_matrix/client/v3/account/whoami"
VERSIONS = "/_matrix/client/versions"
UNKNOWN_PATH = "/_matrix/client/v3/mxconform_no_such_endpoint"
ORIGIN = "https://mxconform.invalid"


@pytest.mark.check("general.unrecognized.endpoint", "API-UNRECOGNIZED")
async def check_unknown_endpoint_is_unrecognized(hs):
    """A path the server does not serve answers 404 M_UNRECOGNIZED."""
    resp = await hs.request("GET", UNKNOWN_PATH, credentials=NO_CREDENTIALS)
    expect(resp, match.status(404), match.errcode("M_UNRECOGNIZED"))


@pytest.mark.check("general.unrecognized.method", "API-UNRECOGNIZED")
async def check_unknown_method_is_unrecognized(hs):
    """A served path with a method it does not support answers 405 M_UNRECOGNIZED."""
    served = await hs.request("GET", VERSIONS, credentials=NO_CREDENTIALS)
    require(served, match.status(200), what="GET /versions (the path is served)")
    resp = await hs.request("DELETE", VERSIONS, credentials=NO_CREDENTIALS)
    expect(resp, match.status(405), match.errcode("M_UNRECOGNIZED"))


async def preflight(hs):
    return await hs.request(
        "OPTIONS",
        WHOAMI,
        credentials=NO_CREDENTIALS,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


@pytest.mark.check("general.options.preflight", "API-OPTIONS")
async def check_options_preflight_needs_no_token(hs):
    """A CORS preflight on an authenticated endpoint is answered 2xx without a token."""
    resp = await preflight(hs)
    expect(resp, match.status_in(range(200, 300), "a 2xx answer to OPTIONS"))


@pytest.mark.check("general.cors.headers", "API-CORS")
async def check_cors_headers_allow_bearer_tokens(hs):
    """The preflight carries the recommended CORS headers, `Authorization` allowed."""
    resp = await preflight(hs)
    require(resp, match.status_in(range(200, 300), "a 2xx"), what="the OPTIONS preflight")
    origin = resp.headers.get("access-control-allow-origin")
    allowed = [
        h.strip().lower() for h in resp.headers.get("access-control-allow-headers", "").split(",")
    ]
    methods = resp.headers.get("access-control-allow-methods", "")
    expect_true(
        origin in ("*", ORIGIN) and "authorization" in allowed and "GET" in methods.upper(),
        "the preflight allows the origin, GET and the Authorization header",
        expected="an allowed origin; Authorization in Allow-Headers; GET in Allow-Methods",
        observed={"allow-origin": origin, "allow-headers": allowed, "allow-methods": methods},
    )


@pytest.mark.check("tokens.www-authenticate", "TOKEN-WWW-AUTH")
async def check_www_authenticate_is_recorded(hs):
    """Whether a 401 for a missing token carries `WWW-Authenticate` is recorded, not judged."""
    resp = await hs.request("GET", WHOAMI, credentials=NO_CREDENTIALS)
    require(resp, match.status(401), what="whoami without a token")
    header = resp.headers.get("www-authenticate")
    observe(
        f"WWW-Authenticate: {header}" if header else "no WWW-Authenticate header on the 401",
        req="TOKEN-WWW-AUTH",
    )


LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")


@pytest.mark.check("general.https", "API-HTTPS")
async def check_api_is_served_over_https(target):
    """The API is served over HTTPS: judged on the scheme the run reaches the target by; plain
    HTTP on loopback is a test setup, where the rule is not judged (never a PASS)."""
    url = httpx.URL(target.base_url)
    if url.scheme != "https" and (url.host in LOOPBACK or url.host.startswith("127.")):
        raise NotApplicable(
            f"plain HTTP on loopback ({url.host}): a test setup, HTTPS not judged", "feature"
        )
    expect_true(
        url.scheme == "https",
        f"the API is served over plain HTTP at {url.host}",
        expected="https",
        observed=str(url),
    )
