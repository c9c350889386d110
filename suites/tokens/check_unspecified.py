"""Token shapes the spec leaves open: recorded as INFO, compared across servers.

The spec is silent on what these should do, so the outcome is an observation. What it does
say still holds: an error is a well-formed JSON error, and a request that is let through acts
as the token's real owner.
"""

import pytest

from mxconform.http.credentials import authorization_value, bearer_header, query_param
from mxconform.legacy.probes import WHOAMI
from mxconform.spec.matchers import body, expect, match
from mxconform.spec.verdicts import observe

pytestmark = pytest.mark.api("legacy")

UNKNOWN = "mxconform_never_issued_0123456789"

CASES = {
    "header-and-query-same": lambda t: bearer_header(t) + query_param(t),
    "header-valid-query-unknown": lambda t: bearer_header(t) + query_param(UNKNOWN),
    "lowercase-bearer": lambda t: authorization_value(f"bearer {t}", "lowercase-bearer"),
    "two-authorization-headers": lambda t: bearer_header(t) + bearer_header(UNKNOWN),
    "other-scheme": lambda t: authorization_value(f"Token {t}", "other-scheme"),
    "bearer-without-token": lambda t: authorization_value("Bearer", "bearer-without-token"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.check("tokens.unspecified", "TOKEN-BOTH", "API-ERR-SHAPE")
async def check_unspecified_token_shapes_are_recorded(hs, user, case):
    """Record how the server treats a token shape the spec does not define."""
    resp = await WHOAMI.send(hs, user.user_id, CASES[case](user.access_token))
    data = body(resp) if isinstance(body(resp), dict) else {}
    if resp.status_code == 200:
        expect(resp, match.json_key_equal("user_id", user.user_id), req="WHOAMI-200")
        observe(f"{case}: accepted (HTTP 200 as {data.get('user_id')})")
    else:
        expect(resp, match.json_keys_present("errcode", "error"), req="API-ERR-SHAPE")
        observe(f"{case}: refused with HTTP {resp.status_code} {data.get('errcode')}")
