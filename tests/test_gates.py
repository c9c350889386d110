"""Version gates against the spec's own data: where the OpenAPI files say in which version an
operation or field was added (or an endpoint changed), a catalogue row that rests on it must
be gated at that version. A wrong gate is a false FAIL on every server held to an older one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mxconform.spec import requirements

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "matrix-spec" / "data"
CS = "api/client-server"
JSON = ("content", "application/json", "schema", "properties")
OK_200 = ("responses", "200", *JSON)

# (requirement ids, file, path in the YAML, annotation): "added" reads the node's
# x-addedInMatrixVersion; a version string "1.11" must be a key of x-changedInMatrixVersion.
# ("param", NAME) in a path picks the named item of a `parameters` list.
DECIDED_BY_DATA: list[tuple[list[str], str, tuple[Any, ...], str]] = [
    (
        [
            "LOGINTOKEN-OPTIONAL",
            "LOGINTOKEN-UIA-ALWAYS",
            "LOGINTOKEN-SINGLE-USE",
            "LOGINTOKEN-200",
            "CAP-GET-LOGIN-TOKEN",
        ],
        "login_token.yaml",
        ("paths", "/login/get_token", "post"),
        "added",
    ),
    (
        ["LOGINTOKEN-OPTIONAL"],
        "login.yaml",
        ("paths", "/login", "get", *OK_200, "flows", "items", "properties", "get_login_token"),
        "added",
    ),
    (
        ["REFRESH-NO-AT", "REFRESH-200", "REFRESH-401", "REFRESH-OLD-AT"],
        "refresh.yaml",
        ("paths", "/refresh", "post"),
        "added",
    ),
    (
        ["LOGIN-REFRESH-OPTIN"],
        "login.yaml",
        ("paths", "/login", "post", "requestBody", *JSON, "refresh_token"),
        "added",
    ),
    (
        ["REG-TOKEN-VALIDITY"],
        "registration_tokens.yaml",
        ("paths", "/register/m.login.registration_token/validity", "get"),
        "added",
    ),
    (["SSO-REDIRECT"], "sso_login_redirect.yaml", ("paths", "/login/sso/redirect", "get"), "added"),
    (
        ["SSO-REDIRECT-IDP"],
        "sso_login_redirect.yaml",
        ("paths", "/login/sso/redirect/{idpId}", "get"),
        "added",
    ),
    (
        ["SSO-ACTION", "OAUTHAWARE-ACTION"],
        "sso_login_redirect.yaml",
        ("paths", "/login/sso/redirect", "get", "parameters", ("param", "action")),
        "added",
    ),
    (
        ["OAUTHAWARE-PREFERRED"],
        "definitions/sso_login_flow.yaml",
        ("properties", "oauth_aware_preferred"),
        "added",
    ),
    (["LOCK-ADMIN-API"], "admin.yaml", ("paths", "/v1/admin/lock/{userId}", "put"), "added"),
    (
        ["OAUTH-META-ACCOUNT", "OAUTHAWARE-ACCT-URI", "OAUTH-ACCT-DISCOVERY"],
        "oauth_server_metadata.yaml",
        ("paths", "/auth_metadata", "get", *OK_200, "account_management_uri"),
        "added",
    ),
    (
        ["OAUTH-META-DEVICE", "OAUTH-DEVICE-GRANT"],
        "oauth_server_metadata.yaml",
        ("paths", "/auth_metadata", "get", *OK_200, "device_authorization_endpoint"),
        "added",
    ),
    (
        ["WHOAMI-200"],
        "whoami.yaml",
        ("paths", "/account/whoami", "get", *OK_200, "device_id"),
        "added",
    ),
    (
        ["XSIGN-UIA-EXEMPT"],
        "cross_signing.yaml",
        ("paths", "/keys/device_signing/upload", "post"),
        "1.11",
    ),
    (["VERSIONS-OPTIONAL-AUTH"], "versions.yaml", ("paths", "/versions", "get"), "1.10"),
]


def _node(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        if isinstance(step, tuple):
            document = next(p for p in document if p.get("name") == step[1])
        else:
            document = document[step]
    return document


def _version(text: str) -> requirements.SpecVersion:
    major, minor = str(text).removeprefix("v").split(".")[:2]
    return int(major), int(minor)


def test_every_gate_names_its_source() -> None:
    missing = [r.id for r in requirements.catalogue().values() if not r.gate_source]
    assert not missing, f"rows without gate_source: {missing}"


@pytest.mark.skipif(not DATA.exists(), reason="matrix-spec data not present")
@pytest.mark.parametrize(
    ("ids", "file", "path", "annotation"),
    DECIDED_BY_DATA,
    ids=[f"{case[1]}:{case[0][0]}" for case in DECIDED_BY_DATA],
)
def test_gate_agrees_with_the_spec_data(
    ids: list[str], file: str, path: tuple[Any, ...], annotation: str
) -> None:
    node = _node(yaml.safe_load((DATA / CS / file).read_text()), path)
    if annotation == "added":
        wanted = str(node["x-addedInMatrixVersion"])
    else:
        assert annotation in {str(k) for k in node["x-changedInMatrixVersion"]}, (file, path)
        wanted = annotation
    cat = requirements.catalogue()
    wrong = {
        rid: cat[rid].since
        for rid in ids
        if cat[rid].since is None or _version(cat[rid].since) != _version(wanted)
    }
    assert not wrong, f"the data says v{wanted} ({file}); the catalogue says {wrong}"


@pytest.mark.skipif(not DATA.exists(), reason="matrix-spec data not present")
def test_query_token_gates_follow_its_removal_from_the_data() -> None:
    """MSC4127: once the data has no query-string security scheme, the legacy rule ends and
    the removal rule begins at the same version."""
    schemes = yaml.safe_load((DATA / CS / "definitions" / "security.yaml").read_text())
    cat = requirements.catalogue()
    if "accessTokenQuery" not in schemes:
        assert cat["TOKEN-QUERY-LEGACY"].until is not None
        assert cat["TOKEN-QUERY-REMOVED"].since == cat["TOKEN-QUERY-LEGACY"].until
