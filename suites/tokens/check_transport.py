"""Access-token transport: how a token travels, and how missing or bad tokens are refused.

Each check runs on several authenticated operations and, where a token is sent, through both
transports the spec defines (`Authorization: Bearer` and the deprecated `access_token` query
parameter, whose rule the transport adds to the check's requirements and version gate).
"""

import pytest

from mxconform.http.credentials import NO_CREDENTIALS, query_param
from mxconform.legacy.probes import AUTHENTICATED_PROBES, WHOAMI
from mxconform.spec.matchers import expect, match

pytestmark = pytest.mark.api("legacy")
# Checks that need no token of a particular API also run on OAuth-only targets, with the
# OAuth user's id (and token, where a valid one is needed).
either_api = pytest.mark.api("legacy", "oauth")

probes = pytest.mark.parametrize("probe", AUTHENTICATED_PROBES, ids=lambda p: p.id)
UNKNOWN_TOKEN = "mxconform_never_issued_0123456789"


@probes
@pytest.mark.check("tokens.valid.accepted")
async def check_valid_token_is_accepted(hs, user, transport, probe):
    """A valid access token is accepted through the transport under test."""
    resp = await probe.send(hs, user.user_id, transport.credentials(user.access_token))
    expect(resp, match.status(200))


@pytest.mark.check("tokens.whoami.identity", "WHOAMI-200", "DEVICE-BIND")
async def check_whoami_names_the_token_owner(hs, user, transport):
    """whoami answers with the user and device the token was issued to."""
    resp = await WHOAMI.send(hs, user.user_id, transport.credentials(user.access_token))
    expect(
        resp,
        match.status(200),
        match.json_key_equal("user_id", user.user_id),
        match.json_key_equal("device_id", user.device_id),
        match.json_key_in("is_guest", (False,), absent_ok=True),
    )


@either_api
@probes
@pytest.mark.check("tokens.missing.rejected", "TOKEN-MISSING")
async def check_no_token_is_missing_token(hs, token_holder, probe):
    """A request without any token is refused with 401 M_MISSING_TOKEN."""
    resp = await probe.send(hs, token_holder.user_id, NO_CREDENTIALS)
    expect(resp, match.status(401), match.errcode("M_MISSING_TOKEN"))


@either_api
@probes
@pytest.mark.check("tokens.unknown.rejected", "TOKEN-UNKNOWN")
async def check_unknown_token_is_unknown_token(hs, token_holder, transport, probe):
    """A token the server never issued is refused with 401 M_UNKNOWN_TOKEN."""
    resp = await probe.send(hs, token_holder.user_id, transport.credentials(UNKNOWN_TOKEN))
    expect(resp, match.status(401), match.errcode("M_UNKNOWN_TOKEN"))
    expect(resp, match.json_key_type("soft_logout", bool, absent_ok=True))
    expect(
        resp,
        match.json_key_in("soft_logout", (False,), absent_ok=True),
        req="TOKEN-SOFTLOGOUT-FIELD",
    )


@probes
@pytest.mark.check("tokens.logged-out.rejected", "TOKEN-UNKNOWN")
async def check_logged_out_token_is_unknown_token(hs, user, logged_out_token, transport, probe):
    """The token of a device that logged out is refused with 401 M_UNKNOWN_TOKEN."""
    resp = await probe.send(hs, user.user_id, transport.credentials(logged_out_token))
    expect(resp, match.status(401), match.errcode("M_UNKNOWN_TOKEN"))
    expect(
        resp,
        match.json_key_in("soft_logout", (False,), absent_ok=True),
        req="TOKEN-SOFTLOGOUT-FIELD",
    )


@either_api
@pytest.mark.check("tokens.error-shape.missing", "API-ERR-SHAPE", "API-JSON-CT")
async def check_missing_token_error_is_well_formed(hs, token_holder):
    """The refusal of a token-less request is a JSON error with errcode and error."""
    resp = await WHOAMI.send(hs, token_holder.user_id, NO_CREDENTIALS)
    expect(
        resp,
        match.status_in(range(400, 500), "a 4xx error"),
        match.json_keys_present("errcode", "error"),
    )
    expect(resp, match.content_type_json(), req="API-JSON-CT")


@either_api
@pytest.mark.check("tokens.error-shape.unknown", "API-ERR-SHAPE", "API-JSON-CT")
async def check_unknown_token_error_is_well_formed(hs, token_holder, transport):
    """The refusal of an unknown token is a JSON error with errcode and error."""
    resp = await WHOAMI.send(hs, token_holder.user_id, transport.credentials(UNKNOWN_TOKEN))
    expect(
        resp,
        match.status_in(range(400, 500), "a 4xx error"),
        match.json_keys_present("errcode", "error"),
    )
    expect(resp, match.content_type_json(), req="API-JSON-CT")


@either_api
@probes
@pytest.mark.check("tokens.query.ignored", "TOKEN-QUERY-REMOVED", transport="query")
async def check_query_token_no_longer_honoured(hs, token_holder, probe):
    """From v1.20 a query-string token counts as no token: 401 M_MISSING_TOKEN."""
    resp = await probe.send(hs, token_holder.user_id, query_param(token_holder.access_token))
    expect(resp, match.status(401), match.errcode("M_MISSING_TOKEN"))
