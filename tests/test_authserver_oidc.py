"""The embedded OAuth server's OpenID Connect face, alone (no Synapse): its discovery document
as OIDC discovery validators judge it (authlib's and idpyoidc's), its JWK Set, and the
suites' own reading of such a document (`oauth/oidc.py`)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from authlib.oidc.discovery import OpenIDProviderMetadata

from mxconform.oauth.oidc import DISCOVERY_REQUIRED, discovery_url, is_jws
from mxconform.oauth.oidc import missing_discovery_fields as missing
from mxconform.targets.embedded.authserver import EmbeddedAuthServer
from mxconform.targets.embedded.authserver.discovery import metadata
from mxconform.targets.embedded.authserver.oidc import JWKS_PATH
from mxconform.targets.embedded.authserver.responses import CORS_PATHS

ORIGIN = "https://web-client.example.org"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[EmbeddedAuthServer, httpx.Client]]:
    """The server with its https public face, and a client trusting only the run's CA."""
    server = EmbeddedAuthServer(
        shared_secret="shared-" + "s" * 20,
        server_name="localhost",
        admin_client_id="admin",
        admin_client_secret="admin-" + "a" * 20,
        public_tls=True,
    ).start()
    assert server.ca_file is not None
    trusting = ssl.create_default_context(cafile=str(server.ca_file))
    try:
        with httpx.Client(verify=trusting, headers={"Origin": ORIGIN}) as http:
            yield server, http
    finally:
        server.stop()


def document(served: tuple[EmbeddedAuthServer, httpx.Client]) -> dict[str, Any]:
    server, http = served
    resp = http.get(discovery_url(server.issuer))
    assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == "*"
    data: dict[str, Any] = resp.json()
    return data


def test_the_discovery_document_passes_authlibs_oidc_validation(served):
    data = document(served)
    OpenIDProviderMetadata(data).validate()  # raises on any REQUIRED field missing or wrong
    assert data["issuer"] == served[0].issuer
    assert data["jwks_uri"] == served[0].base_url + JWKS_PATH
    assert data["subject_types_supported"] == ["public"]
    assert data["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "openid" in data["scopes_supported"]
    rfc8414 = served[1].get(served[0].base_url + "/.well-known/oauth-authorization-server")
    assert rfc8414.json() == data  # one document at both paths, as MAS serves it


def test_the_discovery_document_passes_idpyoidcs_provider_info_validation(served):
    oidc = pytest.importorskip("idpyoidc.message.oidc")
    assert oidc.ProviderConfigurationResponse(**document(served)).verify()


@pytest.mark.parametrize("field", ["jwks_uri", "subject_types_supported"])
def test_the_validators_refuse_a_document_without_a_required_field(served, field):
    """What the validators above would say of the stand-in (and of the server before
    issue 25): the tests are not vacuous."""
    broken = {k: v for k, v in document(served).items() if k != field}
    with pytest.raises(ValueError, match=field):
        OpenIDProviderMetadata(broken).validate()
    oidc = pytest.importorskip("idpyoidc.message.oidc")
    with pytest.raises(Exception, match=field):
        oidc.ProviderConfigurationResponse(**broken).verify()


def test_the_jwk_set_publishes_one_public_rs256_signing_key(served):
    resp = served[1].get(document(served)["jwks_uri"])
    assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == "*"
    assert JWKS_PATH in CORS_PATHS
    (key,) = resp.json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert key["kid"] and not {"d", "p", "q", "dp", "dq", "qi"} & set(key)  # public only


def test_the_suites_read_the_embedded_document_as_complete():
    base = "https://auth.example.org"
    assert missing(metadata(base), base + "/") == []
    assert discovery_url(base + "/") == base + "/.well-known/openid-configuration"
    assert discovery_url(base + "/mas/") == base + "/mas/.well-known/openid-configuration"


@pytest.mark.parametrize("field", DISCOVERY_REQUIRED)
def test_the_suites_name_each_missing_required_field(field):
    base = "https://auth.example.org"
    data = {k: v for k, v in metadata(base).items() if k != field}
    assert missing(data, base + "/") == [field]


def test_the_suites_compare_the_issuer_and_let_an_implicit_only_provider_off_its_token_endpoint():
    base = "https://auth.example.org"
    moved = {**metadata(base), "issuer": "https://elsewhere.example.org/"}
    assert missing(moved, base + "/") == [
        f"issuer {base + '/'!r} (it says 'https://elsewhere.example.org/')"
    ]
    implicit = {**metadata(base), "response_types_supported": ["id_token"]}
    del implicit["token_endpoint"]
    assert missing(implicit, base + "/") == []


@pytest.mark.parametrize(
    ("value", "jws"),
    [("a.b.c", True), ("a.b", False), ("a..c", False), (None, False), (3, False)],
)
def test_an_id_token_is_a_compact_jws(value, jws):
    assert is_jws(value) is jws
