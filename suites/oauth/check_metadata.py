"""OAuth 2.0 server metadata (auth_metadata): required fields and values, optional ones
validated when present."""

import re
from urllib.parse import urlsplit

import pytest

from mxconform.errors import NotApplicable
from mxconform.oauth.client import DEVICE_CODE_GRANT, discover
from mxconform.spec.matchers import body, expect, expect_true, match

pytestmark = pytest.mark.api("oauth")

REQUIRED = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "registration_endpoint",
    "response_types_supported",
    "grant_types_supported",
    "response_modes_supported",
    "code_challenge_methods_supported",
)
# The arrays of strings oauth_server_metadata.yaml defines (tests/test_catalogue.py reads them
# from the spec's data and compares).
ARRAYS_OF_STRINGS = (
    "response_types_supported",
    "grant_types_supported",
    "response_modes_supported",
    "code_challenge_methods_supported",
    "prompt_values_supported",
    "account_management_actions_supported",
)
ACTIONS = (
    "org.matrix.profile",
    "org.matrix.devices_list",
    "org.matrix.device_view",
    "org.matrix.device_delete",
    "org.matrix.account_deactivate",
    "org.matrix.cross_signing_reset",
)


@pytest.fixture
async def served(hs, oauth_metadata):
    """The metadata response itself, fetched within the check so it is evidence."""
    _, resp = await discover(hs)
    if resp.status_code != 200:  # only the unstable path answered
        return await hs.request("GET", oauth_metadata.path, note="unstable metadata path")
    return resp


@pytest.mark.check("oauth.metadata.required-fields", "OAUTH-META-REQUIRED")
async def check_metadata_has_every_required_field(served):
    """The metadata carries every field the spec requires."""
    expect(served, match.status(200), match.json_keys_present(*REQUIRED))


@pytest.mark.check("oauth.metadata.field-types", "OAUTH-META-TYPES")
async def check_array_fields_are_arrays_of_strings(served):
    """Every array the metadata schema defines is, when present, an array of strings (a
    client iterates them as such; `prompt_values_supported: ["create", 1]` broke none of
    the value checks)."""
    data = body(served) or {}
    wrong = {
        k: data[k]
        for k in ARRAYS_OF_STRINGS
        if k in data
        and not (isinstance(data[k], list) and all(isinstance(v, str) for v in data[k]))
    }
    expect_true(
        not wrong,
        f"metadata arrays that are not arrays of strings: {wrong}",
        expected="arrays of strings",
        observed=wrong,
    )


@pytest.mark.check("oauth.metadata.issuer", "OAUTH-META-ISSUER")
async def check_issuer_is_https_without_query_or_fragment(served):
    """The issuer is an https URL with no query and no fragment."""
    issuer = (body(served) or {}).get("issuer")
    parts = urlsplit(issuer) if isinstance(issuer, str) else None
    expect_true(
        parts is not None and parts.scheme == "https" and not parts.query and not parts.fragment,
        f"issuer {issuer!r} is not an https URL without query and fragment",
        expected="https URL, no query, no fragment",
        observed=issuer,
    )


@pytest.mark.check("oauth.metadata.endpoint-uris", "OAUTH-META-URIS")
async def check_endpoints_are_absolute_uris(served):
    """Every *_endpoint value is an absolute URI."""
    data = body(served) or {}
    bad = {
        k: v
        for k, v in data.items()
        if k.endswith("_endpoint")
        and not (isinstance(v, str) and urlsplit(v).scheme in ("http", "https") and "//" in v)
    }
    expect_true(not bad, f"endpoints that are not absolute URIs: {bad}", observed=bad)


@pytest.mark.check("oauth.metadata.response-types", "OAUTH-META-RESPONSE-TYPES")
async def check_code_response_type_is_listed(served):
    """response_types_supported includes `code`."""
    expect(served, match.json_list_contains("response_types_supported", "code"))


@pytest.mark.check("oauth.metadata.grant-types", "OAUTH-META-GRANT-TYPES")
async def check_code_and_refresh_grants_are_listed(served):
    """grant_types_supported includes authorization_code and refresh_token."""
    expect(
        served,
        match.json_list_contains("grant_types_supported", "authorization_code", "refresh_token"),
    )


@pytest.mark.check("oauth.metadata.response-modes", "OAUTH-META-RESPONSE-MODES")
async def check_query_and_fragment_modes_are_listed(served):
    """response_modes_supported includes both `query` and `fragment`."""
    expect(served, match.json_list_contains("response_modes_supported", "query", "fragment"))


@pytest.mark.check("oauth.metadata.pkce", "OAUTH-META-PKCE")
async def check_s256_is_listed(served):
    """code_challenge_methods_supported includes S256."""
    expect(served, match.json_list_contains("code_challenge_methods_supported", "S256"))


@pytest.mark.check(
    "oauth.metadata.account-management",
    "OAUTH-META-ACCOUNT",
    "OAUTH-ACCT-ACTIONS",
    "OAUTH-ACCT-DISCOVERY",
)
async def check_account_management_fields_when_present(served):
    """When advertised, account_management_uri is a URI and the actions are namespaced
    identifiers (the six Matrix actions, or vendor ones)."""
    data = body(served) or {}
    if "account_management_uri" not in data:
        raise NotApplicable("the server advertises no account_management_uri")
    uri = data["account_management_uri"]
    expect_true(
        isinstance(uri, str) and urlsplit(uri).scheme in ("http", "https"),
        f"account_management_uri {uri!r} is not an http(s) URI",
        req="OAUTH-META-ACCOUNT",
        observed=uri,
    )
    actions = data.get("account_management_actions_supported", [])
    odd = [
        a
        for a in actions
        if isinstance(actions, list)
        if not (
            isinstance(a, str) and (a in ACTIONS or re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9_-]+)+", a))
        )
    ]
    expect_true(
        isinstance(actions, list) and not odd,
        f"account management actions that are not namespaced identifiers: {odd or actions}",
        req="OAUTH-ACCT-ACTIONS",
        observed=actions,
    )


@pytest.mark.check("oauth.metadata.device-grant", "OAUTH-META-DEVICE", "OAUTH-DEVICE-GRANT")
async def check_device_grant_fields_agree(served):
    """A device_authorization_endpoint comes with the device_code grant type, and the other
    way round."""
    data = body(served) or {}
    endpoint = "device_authorization_endpoint" in data
    grants = data.get("grant_types_supported") or []
    grant = isinstance(grants, list) and DEVICE_CODE_GRANT in grants
    if not endpoint and not grant:
        raise NotApplicable("the server does not offer the device authorisation grant")
    expect_true(
        endpoint and grant,
        "device grant advertised by halves: "
        f"device_authorization_endpoint {'present' if endpoint else 'absent'}, "
        f"device_code grant type {'listed' if grant else 'not listed'}",
        req="OAUTH-DEVICE-GRANT",
        observed={"endpoint": endpoint, "grant_type": grant},
    )


@pytest.mark.check("oauth.metadata.prompt-values", "OAUTH-META-PROMPT")
async def check_prompt_values_when_present(served):
    """prompt_values_supported, when present, is a list of strings (`create` matters)."""
    data = body(served) or {}
    if "prompt_values_supported" not in data:
        raise NotApplicable("the server advertises no prompt_values_supported")
    expect(served, match.json_key_type("prompt_values_supported", list, absent_ok=False))
