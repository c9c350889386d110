"""The embedded OAuth server, alone and behind Synapse (the `synapse-oauth` target).

Driven the way a client and a person would: authlib's OAuth client for the protocol, lxml's
HTML parser for the pages, and Synapse's client API to see what each token really grants.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import lxml.html
import pytest
from authlib.integrations.base_client.sync_openid import OpenIDMixin
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from mxconform.legacy.uia import cross_signing_keys
from mxconform.targets.config import Target
from mxconform.targets.embedded.authserver import EmbeddedAuthServer
from mxconform.targets.embedded.authserver.registration import check_metadata
from mxconform.targets.embedded.authserver.scopes import ScopeError, parse_interactive
from mxconform.targets.lifecycle import RunningTarget, start_target

API = "urn:matrix:client:api:*"
DEVICE = "urn:matrix:client:device:"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REDIRECT = "http://127.0.0.1/cb"  # registered without a port: any port is accepted
CALLBACK = "http://127.0.0.1:53682/cb"

integration = pytest.mark.integration


# Helpers


def new_device() -> str:
    return "DEV" + secrets.token_hex(5).upper()


def scope(device: str, *extra: str) -> str:
    return " ".join([API, DEVICE + device, *extra])


def params_of(location: str) -> dict[str, str]:
    """Query and fragment parameters of a redirect back to the client, merged."""
    parts = urlsplit(location)
    found = {k: v[0] for k, v in parse_qs(parts.query).items()}
    found.update({k: v[0] for k, v in parse_qs(parts.fragment).items()})
    return found


class Browser:
    """A person's user agent: a cookie jar, no automatic redirects, a real HTML parser."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.http = httpx.Client(follow_redirects=False, timeout=15)

    def get(self, url: str) -> httpx.Response:
        return self.http.get(urljoin(self.base, url))

    def submit(self, page: httpx.Response, **fields: str) -> httpx.Response:
        """Post the page's first POST form: its own values (hidden csrf included) + fields."""
        doc = lxml.html.fromstring(page.text)
        form = next(f for f in doc.forms if (f.method or "").upper() == "POST")
        values = dict(form.form_values())
        values.update(fields)
        action = urljoin(str(page.url), form.get("action") or str(page.url))
        return self.http.post(action, data=values)

    def follow(self, resp: httpx.Response, stop_at: str = "http://127.0.0.1:53682") -> Any:
        """Follow redirects on the server; stop at a page, or at the client's redirect URI."""
        while resp.status_code in (302, 303):
            location = urljoin(str(resp.url), resp.headers["location"])
            if location.startswith(stop_at):
                return location
            resp = self.http.get(location)
        return resp

    def login(self, page: httpx.Response, username: str, password: str) -> Any:
        assert "/login" in str(page.url), page.url
        return self.follow(self.submit(page, username=username, password=password))

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module", autouse=True)
def _trust_the_runs_ca(synapse_oauth: RunningTarget) -> Iterator[None]:
    """The server's public face is https, signed by a CA made for the run: this module's
    plain httpx calls trust it (the harness's own clients are given it explicitly)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(synapse_oauth.ca_file))
        yield


@pytest.fixture
def browser(synapse_oauth: RunningTarget) -> Iterator[Browser]:
    agent = Browser(auth_url(synapse_oauth))
    yield agent
    agent.close()


def auth_url(rt: RunningTarget) -> str:
    assert rt.oauth_admin is not None
    return rt.oauth_admin.url


def register(rt: RunningTarget, **metadata: Any) -> httpx.Response:
    body = {
        "client_name": "tests",
        "client_uri": "https://client.example.org/",
        "application_type": "native",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token", DEVICE_GRANT],
        "response_types": ["code"],
    }
    body.update(metadata)
    return httpx.post(auth_url(rt) + "/oauth2/registration", json=body)


@pytest.fixture(scope="module")
def client_id(synapse_oauth: RunningTarget) -> str:
    resp = register(synapse_oauth)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["client_id"])


@pytest.fixture(scope="module")
def admin_headers(synapse_oauth: RunningTarget) -> dict[str, str]:
    admin = synapse_oauth.oauth_admin
    assert admin is not None
    resp = httpx.post(
        admin.url + "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "urn:mas:admin"},
        auth=(admin.client_id, admin.client_secret),
    )
    assert resp.status_code == 200, resp.text
    assert "refresh_token" not in resp.json()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def make_user(rt: RunningTarget, headers: dict[str, str]) -> tuple[str, str, str]:
    """A fresh account through the admin API: (username, password, admin ID)."""
    username = "u" + uuid.uuid4().hex[:10]
    password = secrets.token_urlsafe(12)
    base = auth_url(rt) + "/api/admin/v1"
    created = httpx.post(base + "/users", json={"username": username}, headers=headers)
    assert created.status_code == 201, created.text
    user_id = created.json()["data"]["id"]
    done = httpx.post(
        f"{base}/users/{user_id}/set-password", json={"password": password}, headers=headers
    )
    assert done.status_code == 204
    return username, password, user_id


@pytest.fixture
def user(synapse_oauth: RunningTarget, admin_headers: dict[str, str]) -> tuple[str, str, str]:
    return make_user(synapse_oauth, admin_headers)


def oauth_client(rt: RunningTarget, client_id: str, device: str, **kw: Any) -> OAuth2Client:
    return OAuth2Client(
        client_id=client_id,
        token_endpoint_auth_method="none",
        redirect_uri=CALLBACK,
        scope=scope(device),
        code_challenge_method="S256",
        **kw,
    )


def code_flow(
    rt: RunningTarget,
    browser: Browser,
    client_id: str,
    user: tuple[str, str, str],
    device: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Authorisation code + PKCE through the pages; the token response and the device."""
    device = device or new_device()
    client = oauth_client(rt, client_id, device)
    verifier = secrets.token_urlsafe(48)
    url, state = client.create_authorization_url(
        auth_url(rt) + "/authorize", code_verifier=verifier
    )
    result = browser.follow(browser.get(url))
    if not isinstance(result, str):  # not logged in yet: the login page
        result = browser.login(result, user[0], user[1])
    if not isinstance(result, str):  # the consent page
        assert "/consent/" in str(result.url)
        result = browser.follow(browser.submit(result, action="consent"))
    assert isinstance(result, str), result
    assert params_of(result)["state"] == state
    token = client.fetch_token(
        auth_url(rt) + "/oauth2/token", authorization_response=result, code_verifier=verifier
    )
    client.close()
    return dict(token), device


def whoami(rt: RunningTarget, token: str) -> httpx.Response:
    return httpx.get(
        rt.base_url + "/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {token}"},
    )


def token_request(rt: RunningTarget, **form: str) -> httpx.Response:
    return httpx.post(auth_url(rt) + "/oauth2/token", data=form)


# Units: scope and registration rules


@pytest.mark.parametrize(
    "requested",
    [
        f"{API} {DEVICE}ABC",
        "urn:matrix:org.matrix.msc2967.client:api:* "
        "urn:matrix:org.matrix.msc2967.client:device:A-b.c~1",
        f"openid {API} {DEVICE}X urn:synapse:admin:*",
    ],
)
def test_scope_rules_accept(requested):
    assert parse_interactive(requested).device_id is not None


@pytest.mark.parametrize(
    "requested",
    [
        None,
        API,  # no device
        f"{API} {DEVICE}A {DEVICE}B",  # two devices
        f"{DEVICE}A",  # no API scope
        f"{API} {DEVICE}A email",  # unknown scope
        f"{API} {DEVICE}a/b",  # not an unreserved character
        f"{API} {DEVICE}" + "x" * 256,
    ],
)
def test_scope_rules_refuse(requested):
    with pytest.raises(ScopeError):
        parse_interactive(requested)


def test_registration_defaults():
    cleaned = check_metadata(
        {"client_uri": "https://example.org/", "redirect_uris": ["https://example.org/cb"]}
    )
    assert cleaned["token_endpoint_auth_method"] == "none"
    assert cleaned["application_type"] == "web"
    assert cleaned["grant_types"] == ["authorization_code"]


# Discovery


@integration
@pytest.mark.parametrize(
    "path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
)
def test_metadata_fields(synapse_oauth, path):
    base = auth_url(synapse_oauth)
    data = httpx.get(base + path).json()
    assert data["issuer"] == base + "/"
    assert data["authorization_endpoint"] == base + "/authorize"
    assert data["token_endpoint"] == base + "/oauth2/token"
    assert data["revocation_endpoint"] == base + "/oauth2/revoke"
    assert data["registration_endpoint"] == base + "/oauth2/registration"
    assert data["device_authorization_endpoint"] == base + "/oauth2/device"
    assert data["introspection_endpoint"] == base + "/oauth2/introspect"
    assert data["account_management_uri"] == base + "/account/"
    assert data["response_types_supported"] == ["code"]
    assert data["response_modes_supported"] == ["query", "fragment"]
    assert data["code_challenge_methods_supported"] == ["S256"]
    assert set(data["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        DEVICE_GRANT,
        "client_credentials",
    }
    methods = {"none", "client_secret_basic", "client_secret_post"}
    assert set(data["token_endpoint_auth_methods_supported"]) == methods
    assert set(data["revocation_endpoint_auth_methods_supported"]) == methods
    assert "org.matrix.cross_signing_reset" in data["account_management_actions_supported"]
    assert len(data["account_management_actions_supported"]) == 6
    assert data["prompt_values_supported"] == ["create"]


@integration
def test_synapse_serves_the_metadata(synapse_oauth):
    resp = httpx.get(synapse_oauth.base_url + "/_matrix/client/v1/auth_metadata")
    assert resp.status_code == 200
    assert resp.json()["issuer"] == auth_url(synapse_oauth) + "/"
    assert resp.json()["account_management_uri"] == auth_url(synapse_oauth) + "/account/"


# Dynamic client registration

WEB = {"application_type": "web", "redirect_uris": ["https://client.example.org/cb"]}


@integration
@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(WEB, id="web"),
        pytest.param({**WEB, "redirect_uris": ["https://app.client.example.org/cb"]}, id="sub"),
        pytest.param({"redirect_uris": ["http://127.0.0.1/cb"]}, id="loopback-v4"),
        pytest.param({"redirect_uris": ["http://localhost/cb"]}, id="localhost"),
        pytest.param({"redirect_uris": ["http://[::1]/cb"]}, id="loopback-v6"),
        pytest.param({"redirect_uris": ["org.example.client:/cb"]}, id="private-scheme"),
        pytest.param({"redirect_uris": ["org.example.client.app:/cb"]}, id="scheme-extension"),
        pytest.param({"redirect_uris": ["https://client.example.org/native"]}, id="native-https"),
        pytest.param(
            {
                "logo_uri": "https://cdn.client.example.org/logo.png",
                "tos_uri": "https://client.example.org/tos",
                "policy_uri": "https://client.example.org/policy",
            },
            id="same-site-uris",
        ),
    ],
)
def test_registration_accepts(synapse_oauth, metadata):
    resp = register(synapse_oauth, **metadata)
    assert resp.status_code == 201, resp.text
    data = resp.json()
    assert data["client_id"] and data["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in data
    assert data["redirect_uris"] == metadata.get("redirect_uris", [REDIRECT])


@integration
def test_registration_of_a_device_only_client_needs_no_redirect(synapse_oauth):
    resp = httpx.post(
        auth_url(synapse_oauth) + "/oauth2/registration",
        json={"client_uri": "https://client.example.org/", "grant_types": [DEVICE_GRANT]},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["grant_types"] == [DEVICE_GRANT]


@integration
def test_registration_drops_unknown_grant_and_response_types(synapse_oauth):
    resp = register(
        synapse_oauth,
        grant_types=["authorization_code", "implicit", "password", "refresh_token"],
        response_types=["code", "token", "id_token"],
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["grant_types"] == ["authorization_code", "refresh_token"]
    assert resp.json()["response_types"] == ["code"]


META = "invalid_client_metadata"
REDIR = "invalid_redirect_uri"
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "no-client-uri": ({"client_uri": None}, META),
    "http": ({"client_uri": "http://client.example.org/"}, META),
    "userinfo": ({"client_uri": "https://me@client.example.org/"}, META),
    "localhost": ({"client_uri": "https://localhost/"}, META),
    "ip-literal": ({"client_uri": "https://192.0.2.1/"}, META),
    "not-a-string": ({"client_uri": 42}, META),
    "logo-elsewhere": ({"logo_uri": "https://elsewhere.example.com/l.png"}, META),
    "policy-http": ({"policy_uri": "http://client.example.org/p"}, META),
    "tos-userinfo": ({"tos_uri": "https://x@client.example.org/t"}, META),
    "confidential": ({"token_endpoint_auth_method": "client_secret_basic"}, META),
    "app-type": ({"application_type": "desktop"}, META),
    "no-redirects": ({"redirect_uris": None}, REDIR),
    "redirects-str": ({"redirect_uris": "http://127.0.0.1/cb"}, REDIR),
    "redirects-empty": ({"redirect_uris": []}, REDIR),
    "web-http": ({**WEB, "redirect_uris": ["http://client.example.org/cb"]}, REDIR),
    "web-host": ({**WEB, "redirect_uris": ["https://other.example/cb"]}, REDIR),
    "web-fragment": ({**WEB, "redirect_uris": ["https://client.example.org/cb#x"]}, REDIR),
    "web-userinfo": ({**WEB, "redirect_uris": ["https://a@client.example.org/cb"]}, REDIR),
    "web-loopback": ({**WEB, "redirect_uris": ["http://127.0.0.1/cb"]}, REDIR),
    "native-port": ({"redirect_uris": ["http://127.0.0.1:8080/cb"]}, REDIR),
    "native-authority": ({"redirect_uris": ["org.example.client://cb"]}, REDIR),
    "native-foreign-scheme": ({"redirect_uris": ["com.other:/cb"]}, REDIR),
    "native-http": ({"redirect_uris": ["http://client.example.org/cb"]}, REDIR),
}


@integration
@pytest.mark.parametrize(("metadata", "error"), list(REFUSED.values()), ids=list(REFUSED))
def test_registration_refuses(synapse_oauth, metadata, error):
    body = {
        "client_uri": "https://client.example.org/",
        "application_type": "native",
        "redirect_uris": [REDIRECT],
    }
    body.update(metadata)
    body = {k: v for k, v in body.items() if v is not None}
    resp = httpx.post(auth_url(synapse_oauth) + "/oauth2/registration", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == error


@integration
@pytest.mark.parametrize("raw", [b"{", b"[]", b"null", b"", b"\xff\xfe"])
def test_registration_refuses_a_body_that_is_not_an_object(synapse_oauth, raw):
    resp = httpx.post(
        auth_url(synapse_oauth) + "/oauth2/registration",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_client_metadata"


# The authorisation endpoint


def authorize_url(rt: RunningTarget, **params: str) -> str:
    query = httpx.QueryParams(params)
    return f"{auth_url(rt)}/authorize?{query}"


def valid_params(client: str, **extra: str) -> dict[str, str]:
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": client,
        "redirect_uri": CALLBACK,
        "scope": scope(new_device()),
        "state": "st-" + secrets.token_hex(4),
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v != ""}


@integration
@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge": "", "code_challenge_method": ""}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),
        ({"scope": API}, "invalid_scope"),
        ({"scope": f"{API} {DEVICE}A {DEVICE}B"}, "invalid_scope"),
        ({"scope": f"{API} {DEVICE}A profile"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
def test_authorize_errors_go_back_to_the_client(synapse_oauth, client_id, change, error):
    params = valid_params(client_id, **change)
    resp = httpx.get(authorize_url(synapse_oauth, **params))
    assert resp.status_code in (302, 303), resp.text
    location = resp.headers["location"]
    assert location.startswith(CALLBACK)
    assert params_of(location)["error"] == error
    assert params_of(location)["state"] == params["state"]


@integration
def test_authorize_error_in_fragment_mode(synapse_oauth, client_id):
    params = valid_params(client_id, response_mode="fragment", code_challenge_method="plain")
    location = httpx.get(authorize_url(synapse_oauth, **params)).headers["location"]
    assert urlsplit(location).query == ""
    assert parse_qs(urlsplit(location).fragment)["error"] == ["invalid_request"]


@integration
@pytest.mark.parametrize(
    "change",
    [
        {"redirect_uri": "http://127.0.0.1:53682/elsewhere"},
        {"redirect_uri": "https://attacker.example/cb"},
        {"redirect_uri": "http://127.0.0.1.attacker.example/cb"},
        {"client_id": "nobody"},
        {"client_id": ""},
        {"redirect_uri": "http://[::1"},
    ],
)
def test_bad_client_or_redirect_is_never_redirected(synapse_oauth, client_id, change):
    params = valid_params(client_id, **change)
    resp = httpx.get(authorize_url(synapse_oauth, **params))
    assert resp.status_code == 400
    assert "location" not in resp.headers
    assert resp.headers["content-type"].startswith("text/html")


@integration
def test_authorize_sends_a_stranger_to_login_then_consent(synapse_oauth, client_id, browser, user):
    params = valid_params(client_id)
    first = browser.get(authorize_url(synapse_oauth, **params))
    assert first.status_code == 303
    location = urlsplit(first.headers["location"])
    assert location.path == "/login"
    query = parse_qs(location.query)
    assert query["kind"] == ["continue_authorization_grant"] and query["id"]
    page = browser.get(first.headers["location"])
    doc = lxml.html.fromstring(page.text)
    form = doc.forms[0]
    assert form.method.upper() == "POST"
    assert set(form.fields.keys()) >= {"csrf", "username", "password"}
    assert browser.http.cookies.get("csrf") == form.fields["csrf"]
    wrong = browser.submit(page, username=user[0], password="not-it")
    assert wrong.status_code == 400 and "location" not in wrong.headers
    assert lxml.html.fromstring(wrong.text).forms  # the form again, with an error
    ok = browser.submit(page, username=user[0], password=user[1])
    assert ok.status_code == 303
    assert ok.headers["location"] == f"/consent/{query['id'][0]}"
    assert browser.http.cookies.get("session")
    # Logged in: the next authorisation goes straight to consent; prompt=none always fails.
    again = browser.get(authorize_url(synapse_oauth, **valid_params(client_id)))
    assert again.status_code == 303 and again.headers["location"].startswith("/consent/")
    silent = browser.get(authorize_url(synapse_oauth, **valid_params(client_id, prompt="none")))
    assert params_of(silent.headers["location"])["error"] == "login_required"


@integration
def test_login_hint_fills_in_the_username(synapse_oauth, client_id, browser):
    hint = "mxid:@hinted:localhost"
    first = browser.get(authorize_url(synapse_oauth, **valid_params(client_id, login_hint=hint)))
    page = browser.get(first.headers["location"])
    assert lxml.html.fromstring(page.text).forms[0].fields["username"] == "hinted"


@integration
def test_login_form_refuses_a_mismatched_csrf(synapse_oauth, browser, user):
    page = browser.get("/login")
    resp = browser.submit(page, username=user[0], password=user[1], csrf="forged")
    assert resp.status_code == 400
    assert not browser.http.cookies.get("session")


@integration
def test_consent_can_be_denied(synapse_oauth, client_id, browser, user):
    params = valid_params(client_id)
    page = browser.follow(browser.get(authorize_url(synapse_oauth, **params)))
    consent = browser.login(page, user[0], user[1])
    assert "/consent/" in str(consent.url)
    location = browser.follow(browser.submit(consent, action="deny"))
    assert params_of(location) == {"error": "access_denied", "state": params["state"]}


@integration
def test_code_in_fragment_mode_with_state(synapse_oauth, client_id, browser, user):
    params = valid_params(client_id, response_mode="fragment")
    page = browser.follow(browser.get(authorize_url(synapse_oauth, **params)))
    consent = browser.login(page, user[0], user[1])
    location = browser.follow(browser.submit(consent, action="consent"))
    parts = urlsplit(location)
    assert parts.query == "" and parts.port == 53682
    assert set(parse_qs(parts.fragment)) == {"code", "state"}
    assert parse_qs(parts.fragment)["state"] == [params["state"]]


# Tokens, as Synapse sees them


@integration
def test_code_flow_token_works_on_synapse(synapse_oauth, client_id, browser, user):
    token, device = code_flow(synapse_oauth, browser, client_id, user)
    assert token["access_token"].startswith("mat_")
    assert token["refresh_token"].startswith("mar_")
    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] == 300
    assert token["scope"] == scope(device)
    me = whoami(synapse_oauth, token["access_token"])
    assert me.status_code == 200, me.text
    assert me.json() == {
        "user_id": f"@{user[0]}:localhost",
        "device_id": device,
        "is_guest": False,
    }
    devices = httpx.get(
        synapse_oauth.base_url + "/_matrix/client/v3/devices",
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert device in [d["device_id"] for d in devices.json()["devices"]]


@integration
def test_code_reuse_is_refused_and_revokes_the_tokens(synapse_oauth, client_id, browser, user):
    device = new_device()
    client = oauth_client(synapse_oauth, client_id, device)
    verifier = secrets.token_urlsafe(48)
    url, _ = client.create_authorization_url(
        auth_url(synapse_oauth) + "/authorize", code_verifier=verifier
    )
    consent = browser.login(browser.follow(browser.get(url)), user[0], user[1])
    location = browser.follow(browser.submit(consent, action="consent"))
    code = params_of(location)["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    wrong_redirect = token_request(synapse_oauth, **{**form, "redirect_uri": REDIRECT})
    assert wrong_redirect.json()["error"] == "invalid_grant"
    wrong_verifier = token_request(synapse_oauth, **{**form, "code_verifier": "x" * 43})
    assert wrong_verifier.json()["error"] == "invalid_grant"
    first = token_request(synapse_oauth, **form)
    assert first.status_code == 200, first.text
    access = first.json()["access_token"]
    assert whoami(synapse_oauth, access).status_code == 200
    second = token_request(synapse_oauth, **form)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    gone = whoami(synapse_oauth, access)  # the device is deleted, so Synapse's cache is moot
    assert gone.status_code == 401 and gone.json()["errcode"] == "M_UNKNOWN_TOKEN"
    client.close()


def refresh(rt: RunningTarget, client_id: str, refresh_token: str) -> httpx.Response:
    return token_request(
        rt, grant_type="refresh_token", refresh_token=refresh_token, client_id=client_id
    )


@integration
def test_refresh_rotation_tolerates_a_lost_response_then_refuses_replay(
    synapse_oauth, client_id, browser, user
):
    token, device = code_flow(synapse_oauth, browser, client_id, user)
    first = refresh(synapse_oauth, client_id, token["refresh_token"])
    assert first.status_code == 200, first.text
    pair = first.json()
    assert pair["refresh_token"] != token["refresh_token"] and pair["scope"] == scope(device)
    # The first access token was never used, so Synapse has nothing cached: it is revoked.
    assert whoami(synapse_oauth, token["access_token"]).status_code == 401
    # The response was "lost": the old refresh token still works while the new pair is unused.
    retry = refresh(synapse_oauth, client_id, token["refresh_token"])
    assert retry.status_code == 200, retry.text
    latest = retry.json()
    assert refresh(synapse_oauth, client_id, pair["refresh_token"]).json()["error"] == (
        "invalid_grant"
    )  # the pair the retry replaced is gone
    assert whoami(synapse_oauth, latest["access_token"]).status_code == 200  # now it is used
    replay = refresh(synapse_oauth, client_id, token["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # A replay ends the whole session, device included.
    assert whoami(synapse_oauth, latest["access_token"]).status_code == 401
    assert refresh(synapse_oauth, client_id, latest["refresh_token"]).status_code == 400


@integration
def test_refresh_token_used_twice_in_a_row_ends_the_session(
    synapse_oauth, client_id, browser, user
):
    token, _ = code_flow(synapse_oauth, browser, client_id, user)
    second = refresh(synapse_oauth, client_id, token["refresh_token"]).json()
    third = refresh(synapse_oauth, client_id, second["refresh_token"])
    assert third.status_code == 200
    assert refresh(synapse_oauth, client_id, token["refresh_token"]).status_code == 400
    assert refresh(synapse_oauth, client_id, third.json()["refresh_token"]).status_code == 400


@integration
@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
def test_revocation_makes_synapse_refuse_the_token(synapse_oauth, client_id, browser, user, which):
    token, _ = code_flow(synapse_oauth, browser, client_id, user)
    assert whoami(synapse_oauth, token["access_token"]).status_code == 200  # cached by Synapse
    resp = httpx.post(
        auth_url(synapse_oauth) + "/oauth2/revoke",
        data={"token": token[which], "token_type_hint": which, "client_id": client_id},
    )
    assert resp.status_code == 200
    assert whoami(synapse_oauth, token["access_token"]).status_code == 401
    assert refresh(synapse_oauth, client_id, token["refresh_token"]).status_code == 400


@integration
def test_revocation_edge_cases(synapse_oauth, client_id):
    url = auth_url(synapse_oauth) + "/oauth2/revoke"
    unknown = httpx.post(url, data={"token": "mat_nothing", "client_id": client_id})
    assert unknown.status_code == 200
    hint = httpx.post(url, data={"token": "x", "token_type_hint": "odd", "client_id": client_id})
    assert hint.status_code == 200
    missing = httpx.post(url, data={"client_id": client_id})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


@integration
def test_introspection_needs_the_shared_secret(synapse_oauth):
    url = auth_url(synapse_oauth) + "/oauth2/introspect"
    assert httpx.post(url, data={"token": "mat_x"}).status_code == 401
    wrong = httpx.post(url, data={"token": "mat_x"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


# The device authorisation grant


@integration
def test_device_grant(synapse_oauth, client_id, browser, user):
    device = new_device()
    base = auth_url(synapse_oauth)
    start = httpx.post(
        base + "/oauth2/device", data={"client_id": client_id, "scope": scope(device, "openid")}
    )
    assert start.status_code == 200, start.text
    grant = start.json()
    assert grant["verification_uri"] == base + "/link"
    assert grant["verification_uri_complete"] == f"{base}/link?code={grant['user_code']}"
    interval = synapse_oauth.embedded.authserver.device_code_interval_s
    assert grant["interval"] == interval and grant["expires_in"] > 0
    assert grant["user_code"].isupper() and len(grant["user_code"]) <= 8
    poll = {"grant_type": DEVICE_GRANT, "device_code": grant["device_code"], "client_id": client_id}
    pending = token_request(synapse_oauth, **poll)
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    fast = token_request(synapse_oauth, **poll)
    assert fast.status_code == 400 and fast.json()["error"] == "slow_down"

    link = browser.get(grant["verification_uri_complete"])
    doc = lxml.html.fromstring(link.text)
    assert doc.forms[0].fields["code"] == grant["user_code"]
    login = browser.follow(browser.submit(link))
    assert "kind=continue_device_code_grant" in str(login.url)
    page = browser.login(login, user[0], user[1])
    assert "/device/" in str(page.url)
    unconfirmed = browser.submit(page, action="consent")
    assert unconfirmed.status_code == 400
    done = browser.submit(page, action="consent", confirm_device="on")
    assert done.status_code == 200

    token = token_request(synapse_oauth, **poll)
    assert token.status_code == 200, token.text
    me = whoami(synapse_oauth, token.json()["access_token"])
    assert me.json()["device_id"] == device and me.json()["user_id"] == f"@{user[0]}:localhost"
    assert "refresh_token" in token.json()
    # as MAS, the device grant too answers `openid` with an ID token (no nonce: none was asked)
    claims = RelyingParty(synapse_oauth, client_id).parse_id_token(token.json(), None)
    assert claims["aud"] == client_id and claims["sub"] == user[2] and "nonce" not in claims
    again = token_request(synapse_oauth, **poll)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    unknown = token_request(synapse_oauth, **{**poll, "device_code": "nothing"})
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"


@integration
def test_device_grant_rejected(synapse_oauth, client_id, browser, user):
    base = auth_url(synapse_oauth)
    grant = httpx.post(
        base + "/oauth2/device", data={"client_id": client_id, "scope": scope(new_device())}
    ).json()
    page = browser.follow(browser.submit(browser.get("/link"), code=grant["user_code"]))
    page = browser.login(page, user[0], user[1])
    assert browser.submit(page, action="reject").status_code == 200
    poll = {"grant_type": DEVICE_GRANT, "device_code": grant["device_code"], "client_id": client_id}
    assert token_request(synapse_oauth, **poll).json()["error"] == "access_denied"


@integration
def test_device_authorization_refusals(synapse_oauth, client_id):
    url = auth_url(synapse_oauth) + "/oauth2/device"
    assert httpx.post(url, data={"client_id": client_id, "scope": API}).json()["error"] == (
        "invalid_scope"
    )
    assert httpx.post(url, data={"client_id": "nobody"}).json()["error"] == "invalid_client"
    web_only = register(synapse_oauth, grant_types=["authorization_code"]).json()["client_id"]
    refused = httpx.post(url, data={"client_id": web_only, "scope": scope(new_device())})
    assert refused.json()["error"] == "unauthorized_client"


# Registration through the pages (prompt=create)


@integration
def test_prompt_create_registers_and_provisions(synapse_oauth, client_id, browser):
    params = valid_params(client_id, prompt="create")
    first = browser.get(authorize_url(synapse_oauth, **params))
    assert urlsplit(first.headers["location"]).path == "/register"
    page = browser.get(first.headers["location"])
    doc = lxml.html.fromstring(page.text)
    assert set(doc.forms[0].fields.keys()) >= {"csrf", "username", "password", "password_confirm"}
    username = "reg" + uuid.uuid4().hex[:8]
    mismatch = browser.submit(page, username=username, password="a1", password_confirm="b2")
    assert mismatch.status_code == 400
    consent = browser.follow(
        browser.submit(page, username=username, password="pw-1", password_confirm="pw-1")
    )
    assert "/consent/" in str(consent.url)
    location = browser.follow(browser.submit(consent, action="consent"))
    assert params_of(location)["code"]
    assert query_user(synapse_oauth, username).status_code == 200  # provisioned in Synapse
    taken = Browser(auth_url(synapse_oauth))
    again = taken.get("/register")
    resp = taken.submit(again, username=username, password="p", password_confirm="p")
    assert resp.status_code == 400  # the name is taken now
    taken.close()


@integration
def test_prompt_create_then_code_flow(synapse_oauth, client_id, browser):
    username = "new" + uuid.uuid4().hex[:8]
    device = new_device()
    client = oauth_client(synapse_oauth, client_id, device)
    verifier = secrets.token_urlsafe(48)
    url, _ = client.create_authorization_url(
        auth_url(synapse_oauth) + "/authorize", code_verifier=verifier, prompt="create"
    )
    page = browser.follow(browser.get(url))
    consent = browser.follow(
        browser.submit(page, username=username, password="pw-2", password_confirm="pw-2")
    )
    location = browser.follow(browser.submit(consent, action="consent"))
    token = client.fetch_token(
        auth_url(synapse_oauth) + "/oauth2/token",
        authorization_response=location,
        code_verifier=verifier,
    )
    me = whoami(synapse_oauth, token["access_token"]).json()
    assert me["user_id"] == f"@{username}:localhost" and me["device_id"] == device
    client.close()


# Account management


@integration
def test_account_page_needs_login_and_comes_back(synapse_oauth, browser, user):
    first = browser.get("/account/?action=org.matrix.profile")
    assert first.status_code == 303
    login = browser.follow(first)
    back = browser.login(login, user[0], user[1])
    assert str(back.url).endswith("/account/?action=org.matrix.profile")
    assert f"@{user[0]}:localhost" in back.text
    elsewhere = browser.submit(
        browser.get("/login?next=//attacker.example/"), username=user[0], password=user[1]
    )
    assert elsewhere.headers["location"] == "/account/"  # never an open redirect
    unknown = browser.get("/account/?action=org.example.unknown")
    assert unknown.status_code == 200 and "Sessions" in unknown.text


@integration
def test_cross_signing_reset_through_the_account_page(synapse_oauth, client_id, browser, user):
    token, _ = code_flow(synapse_oauth, browser, client_id, user)
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    url = synapse_oauth.base_url + "/_matrix/client/v3/keys/device_signing/upload"
    user_id = f"@{user[0]}:localhost"
    assert httpx.post(url, json=cross_signing_keys(user_id), headers=headers).status_code == 200
    replacement = cross_signing_keys(user_id)
    challenge = httpx.post(url, json=replacement, headers=headers)
    assert challenge.status_code == 401
    data = challenge.json()
    assert {"stages": ["m.oauth"]} in data["flows"]
    approve_url = data["params"]["m.oauth"]["url"]
    assert (
        approve_url == auth_url(synapse_oauth) + "/account/?action=org.matrix.cross_signing_reset"
    )
    page = browser.get(approve_url)  # the browser is still logged in from the code flow
    assert page.status_code == 200
    done = browser.submit(page)
    assert done.status_code == 200 and not lxml.html.fromstring(done.text).forms
    assert httpx.post(url, json=replacement, headers=headers).status_code == 200


@integration
def test_device_delete_from_the_account_page(synapse_oauth, client_id, browser, user):
    token, device = code_flow(synapse_oauth, browser, client_id, user)
    assert whoami(synapse_oauth, token["access_token"]).status_code == 200
    listing = browser.get("/account/")
    assert device in listing.text
    view = browser.get(f"/account/?action=org.matrix.device_view&device_id={device}")
    assert view.status_code == 200 and device in view.text
    page = browser.get(f"/account/?action=org.matrix.device_delete&device_id={device}")
    assert browser.submit(page).status_code == 200
    assert whoami(synapse_oauth, token["access_token"]).status_code == 401
    assert browser.get(
        f"/account/?action=org.matrix.device_view&device_id={device}"
    ).status_code == (404)


# The admin API


@integration
def test_admin_api(synapse_oauth, admin_headers, browser):
    base = auth_url(synapse_oauth) + "/api/admin/v1"
    username, password, user_id = make_user(synapse_oauth, admin_headers)
    dup = httpx.post(base + "/users", json={"username": username}, headers=admin_headers)
    assert dup.status_code == 409 and dup.json()["errors"][0]["title"]
    found = httpx.get(f"{base}/users/by-username/{username}", headers=admin_headers)
    assert found.status_code == 200
    assert found.json()["data"] == {
        "type": "user",
        "id": user_id,
        "attributes": found.json()["data"]["attributes"],
        "links": found.json()["data"]["links"],
    }
    assert found.json()["data"]["attributes"]["username"] == username
    missing = httpx.get(f"{base}/users/by-username/nobody-{user_id}", headers=admin_headers)
    assert missing.status_code == 404
    # The password set through the API opens the login page.
    back = browser.login(browser.follow(browser.get("/account/")), username, password)
    assert back.status_code == 200 and "Signed in as" in back.text

    device = new_device()
    made = httpx.post(
        base + "/personal-sessions",
        json={"actor_user_id": user_id, "human_name": "tests", "scope": scope(device)},
        headers=admin_headers,
    )
    assert made.status_code == 201, made.text
    data = made.json()["data"]
    assert data["type"] == "personal-session"
    personal = data["attributes"]["access_token"]
    assert personal.startswith("mpt_")
    me = whoami(synapse_oauth, personal).json()
    assert me == {"user_id": f"@{username}:localhost", "device_id": device, "is_guest": False}
    revoked = httpx.post(f"{base}/personal-sessions/{data['id']}/revoke", headers=admin_headers)
    assert revoked.status_code == 200
    assert whoami(synapse_oauth, personal).status_code == 401

    gone = httpx.post(f"{base}/users/{user_id}/deactivate", headers=admin_headers)
    assert gone.status_code == 200 and gone.json()["data"]["attributes"]["deactivated_at"]
    fresh = Browser(auth_url(synapse_oauth))
    refused = fresh.submit(fresh.get("/login"), username=username, password=password)
    assert refused.status_code == 400
    fresh.close()


@integration
def test_admin_api_needs_an_admin_token(synapse_oauth, client_id, browser, user):
    base = auth_url(synapse_oauth) + "/api/admin/v1/users/by-username/" + user[0]
    assert httpx.get(base).status_code == 401
    assert httpx.get(base, headers={"Authorization": "Bearer mat_forged"}).status_code == 401
    token, _ = code_flow(synapse_oauth, browser, client_id, user)
    as_user = httpx.get(base, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert as_user.status_code == 403 and as_user.json()["errors"]


@integration
def test_client_credentials_is_only_for_the_admin_client(synapse_oauth, client_id):
    admin = synapse_oauth.oauth_admin
    assert admin is not None
    form = {"grant_type": "client_credentials", "scope": "urn:mas:admin"}
    other_scope = httpx.post(
        admin.url + "/oauth2/token",
        data={**form, "scope": API},
        auth=(admin.client_id, admin.client_secret),
    )
    assert other_scope.json()["error"] == "invalid_scope"
    post_auth = httpx.post(
        admin.url + "/oauth2/token",
        data={**form, "client_id": admin.client_id, "client_secret": admin.client_secret},
    )
    assert post_auth.status_code == 200
    wrong = httpx.post(admin.url + "/oauth2/token", data=form, auth=(admin.client_id, "nope"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    public = httpx.post(admin.url + "/oauth2/token", data={**form, "client_id": client_id})
    assert public.status_code in (400, 401)
    assert public.json()["error"] in ("invalid_client", "unauthorized_client")


# Malformed input: an RFC error, never a 500 or a traceback


MALFORMED: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/oauth2/token", {}),
    ("POST", "/oauth2/token", {"json": {"grant_type": "authorization_code"}}),
    ("POST", "/oauth2/token", {"data": {"grant_type": "password", "username": "a"}}),
    ("POST", "/oauth2/token", {"data": {"grant_type": "authorization_code", "client_id": "x"}}),
    ("POST", "/oauth2/token", {"data": {"grant_type": "authorization_code", "code": "x"}}),
    ("POST", "/oauth2/token", {"data": {"grant_type": "refresh_token"}}),
    ("POST", "/oauth2/token", {"data": {"grant_type": "refresh_token", "refresh_token": "x"}}),
    ("POST", "/oauth2/token", {"data": {"grant_type": DEVICE_GRANT}}),
    ("POST", "/oauth2/token", {"data": {"grant_type": DEVICE_GRANT, "device_code": "x"}}),
    ("POST", "/oauth2/token", {"data": {"grant_type": "client_credentials"}}),
    (
        "POST",
        "/oauth2/token",
        {"data": {"grant_type": "client_credentials"}, "headers": {"Authorization": "Basic !!"}},
    ),
    ("POST", "/oauth2/token", {"content": b"\xff\xfe\x00", "headers": {"Content-Type": "x/y"}}),
    ("PUT", "/oauth2/token", {}),
    ("POST", "/oauth2/revoke", {}),
    ("POST", "/oauth2/revoke", {"data": {"token": "x", "client_id": "no-such-client"}}),
    ("POST", "/oauth2/device", {}),
    ("POST", "/oauth2/device", {"data": {"client_id": "nobody", "scope": "x"}}),
    ("POST", "/oauth2/introspect", {"data": {"token": "x"}, "headers": {"Authorization": "x"}}),
    ("POST", "/oauth2/registration", {"content": b"not json"}),
    ("GET", "/oauth2/registration", {}),
    ("GET", "/authorize", {}),
    ("GET", "/authorize?client_id=nobody", {}),
    ("GET", "/authorize?response_type=code&response_type=token", {}),
    ("GET", "/consent/NOTAGRANT", {}),
    ("POST", "/consent/NOTAGRANT", {"data": {"csrf": "x"}}),
    ("GET", "/device/NOTAGRANT", {}),
    ("POST", "/link", {"data": {"code": "ABCDEF"}}),
    ("POST", "/login", {"data": {"username": "a"}}),
    ("POST", "/register", {"data": {"csrf": "x"}}),
    ("GET", "/login?kind=continue_authorization_grant&id=../../etc", {}),
    ("GET", "/login?next=//attacker.example/", {}),
    ("GET", "/api/admin/v1/users/by-username/x", {}),
    ("POST", "/api/admin/v1/users", {"content": b"{"}),
    ("GET", "/no/such/page", {}),
    ("GET", "/oauth2/nothing", {}),
]


@integration
@pytest.mark.parametrize(("method", "path", "kwargs"), MALFORMED)
def test_malformed_input_never_gives_a_server_error(synapse_oauth, method, path, kwargs):
    resp = httpx.request(method, auth_url(synapse_oauth) + path, **kwargs)
    assert resp.status_code < 500, resp.text
    assert "Traceback" not in resp.text
    if path.startswith(("/oauth2/", "/api/")):
        assert resp.status_code >= 400
        body = resp.json()
        assert body.get("error") or body.get("errors")


@integration
@pytest.mark.parametrize(
    "payload",
    [
        None,
        {"actor_user_id": 1, "human_name": "x", "scope": API},
        {"actor_user_id": "nobody", "human_name": "x", "scope": API},
        {"actor_user_id": "x", "human_name": "x", "scope": f"{API} {DEVICE}A {DEVICE}B"},
        {"actor_user_id": "x", "human_name": "x", "scope": API, "expires_in": "soon"},
        {"actor_user_id": "x", "human_name": "x", "scope": ""},
    ],
)
def test_admin_api_malformed_input(synapse_oauth, admin_headers, payload):
    base = auth_url(synapse_oauth) + "/api/admin/v1"
    resp = httpx.post(base + "/personal-sessions", json=payload, headers=admin_headers)
    assert 400 <= resp.status_code < 500 and resp.json()["errors"]
    for bad in (None, {"username": "Has Spaces"}, {"username": 7}):
        made = httpx.post(base + "/users", json=bad, headers=admin_headers)
        assert made.status_code == 400
    bad_password = httpx.post(base + "/users/NOBODY/set-password", json={}, headers=admin_headers)
    assert bad_password.status_code == 404


# Lifecycle


def shared_secret_of(rt: RunningTarget) -> str:
    pair: Any = rt.embedded
    return str(pair.authserver._shared_secret)


def query_user(rt: RunningTarget, localpart: str) -> httpx.Response:
    """Synapse's own record of a user, asked with the secret MAS would use."""
    return httpx.get(
        rt.base_url + "/_synapse/mas/query_user",
        params={"localpart": localpart},
        headers={"Authorization": f"Bearer {shared_secret_of(rt)}"},
    )


@integration
def test_seed_users_are_provisioned_once_synapse_is_known(synapse_oauth):
    name = "seed" + uuid.uuid4().hex[:8]
    server = EmbeddedAuthServer(
        shared_secret=shared_secret_of(synapse_oauth),
        server_name="localhost",
        admin_client_id="admin",
        admin_client_secret="not-used-" + "x" * 10,
        seed_users={name: "pw-seed"},
    ).start()
    try:
        assert query_user(synapse_oauth, name).status_code == 404
        server.synapse_url = synapse_oauth.base_url
        assert server.synapse_url == synapse_oauth.base_url
        assert query_user(synapse_oauth, name).json()["user_id"] == f"@{name}:localhost"
    finally:
        server.stop()


def test_authserver_alone_stops_twice_and_keeps_no_secret(tmp_path):
    shared, admin_secret, password = "shared-" + "s" * 20, "admin-" + "a" * 20, "pw-" + "p" * 12
    server = EmbeddedAuthServer(
        shared_secret=shared,
        server_name="localhost",
        admin_client_id="admin",
        admin_client_secret=admin_secret,
        seed_users={"seeded": password},
        log_dir=tmp_path / "logs",
    ).start()
    base, state = server.base_url, server.state_dir
    assert server.issuer == base + "/"
    token = httpx.post(
        base + "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "urn:mas:admin"},
        auth=("admin", admin_secret),
    ).json()["access_token"]
    found = httpx.get(
        base + "/api/admin/v1/users/by-username/seeded",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert found.status_code == 200
    httpx.post(base + "/oauth2/introspect", data={"token": token}, headers={"Authorization": "x"})
    server.stop()
    server.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(base + "/.well-known/openid-configuration", timeout=2)
    assert not state.exists()
    kept = (tmp_path / "logs" / "authserver.log").read_text()
    assert "POST /oauth2/token -> 200" in kept
    for secret in (shared, admin_secret, password, token):
        assert secret not in kept


@integration
def test_start_target_keeps_scrubbed_logs_of_both_servers(tmp_path):
    target = Target(
        name="synapse-oauth", embedded="synapse-oauth", server_name="localhost", auth=["oauth"]
    )
    running = start_target(target, tmp_path / "logs")
    pair: Any = running.embedded
    assert running.shared_secret is None and running.oauth_admin is not None
    assert pair.startup_s is not None and pair.startup_s < 30
    secrets_used = [pair.authserver._shared_secret, running.oauth_admin.client_secret]
    assert httpx.get(running.base_url + "/_matrix/client/v1/auth_metadata").status_code == 200
    running.stop()
    running.stop()
    logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert logs == ["authserver.log", "synapse-console.log", "synapse-homeserver.log"]
    for path in (tmp_path / "logs").iterdir():
        text = path.read_text()
        for secret in secrets_used:
            assert secret not in text


def test_the_public_face_is_https_signed_by_the_runs_own_ca(tmp_path):
    """With public_tls the issuer and every endpoint clients use are https, trusted only
    through the CA made for the run; Synapse's internal link stays plain http."""
    server = EmbeddedAuthServer(
        shared_secret="shared-" + "s" * 20,
        server_name="localhost",
        admin_client_id="admin",
        admin_client_secret="admin-" + "a" * 20,
        public_tls=True,
    ).start()
    try:
        assert server.issuer.startswith("https://127.0.0.1:")
        assert server.internal_url.startswith("http://127.0.0.1:")
        assert server.ca_file is not None and server.ca_file.exists()
        discovery = "/.well-known/openid-configuration"
        with (
            httpx.Client(verify=ssl.create_default_context()) as untrusting,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            untrusting.get(server.base_url + discovery)
        trusting = ssl.create_default_context(cafile=str(server.ca_file))
        metadata = httpx.get(server.base_url + discovery, verify=trusting).json()
        assert metadata["issuer"] == server.issuer
        endpoints = [v for k, v in metadata.items() if k.endswith("_endpoint")]
        assert endpoints and all(e.startswith(server.base_url + "/") for e in endpoints)
        internal = httpx.post(server.internal_url + "/oauth2/introspect", data={"token": "x"})
        assert internal.status_code == 401  # Synapse's link answers (without the secret: 401)
    finally:
        server.stop()
    assert not server.state_dir.exists()  # the CA's private key went with the state


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ('<input name="login" autocomplete="username">', "login"),
        ('<label for="who">E-mail address</label><input id="who" name="f1" type="email">', "f1"),
        ('<label>Your user name <input name="u"></label>', "u"),
        ('<input name="identifier">', "identifier"),
    ],
)
def test_the_form_driver_finds_the_name_field_by_its_role(field, expected):
    """An authorisation server written elsewhere calls the field `login` (a real one did):
    the driver fills the field whose autocomplete, name or label asks for the account."""
    from mxconform.oauth.drivers.form import choose_form

    html = (
        f'<form method="post" action="/login">{field}'
        '<input name="nickname" type="text"><input name="pw" type="password">'
        "<button>Sign in</button></form>"
    )
    page = choose_form(
        html, "https://auth.example.org/login", {"username": "alice", "password": "s"}
    )
    assert page is not None
    values = dict(page.fields)
    assert values[expected] == "alice" and values["pw"] == "s"
    assert values["nickname"] == ""  # only the field that asks for the name


# OpenID Connect: an ID token whenever `openid` is granted (the code and device grants, as
# MAS), verified the way a relying party does (authlib's OpenIDMixin.parse_id_token)


class RelyingParty(OpenIDMixin):
    """authlib's client-side ID token verification, against the server's own discovery
    document and the JWK Set it names (fetched with authlib's httpx client)."""

    def __init__(self, rt: RunningTarget, client_id: str) -> None:
        self.client_id = client_id
        self.server_metadata = httpx.get(auth_url(rt) + "/.well-known/openid-configuration").json()

    def load_server_metadata(self) -> dict[str, Any]:
        return dict(self.server_metadata)

    def _get_session(self) -> OAuth2Client:
        return OAuth2Client()


def openid_code_flow(
    rt: RunningTarget, browser: Browser, client_id: str, user: tuple[str, str, str], nonce: str
) -> dict[str, Any]:
    """The code grant with PKCE, asking for `openid` with a nonce, through the pages."""
    client = oauth_client(rt, client_id, new_device())
    client.scope = f"{client.scope} openid"
    verifier = secrets.token_urlsafe(48)
    url, _ = client.create_authorization_url(
        auth_url(rt) + "/authorize", code_verifier=verifier, nonce=nonce
    )
    result = browser.follow(browser.get(url))
    if not isinstance(result, str):
        result = browser.login(result, user[0], user[1])
    if not isinstance(result, str):
        result = browser.follow(browser.submit(result, action="consent"))
    assert isinstance(result, str), result
    token = client.fetch_token(
        auth_url(rt) + "/oauth2/token", authorization_response=result, code_verifier=verifier
    )
    client.close()
    return dict(token)


@integration
def test_an_openid_code_grant_carries_an_id_token_a_client_can_verify(
    synapse_oauth, client_id, browser, user
):
    nonce = secrets.token_urlsafe(16)
    before = int(time.time())
    token = openid_code_flow(synapse_oauth, browser, client_id, user, nonce)
    assert "openid" in token["scope"].split()
    rp = RelyingParty(synapse_oauth, client_id)
    issuer = auth_url(synapse_oauth) + "/"
    claims = rp.parse_id_token(
        token,
        nonce,
        claims_options={
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": client_id},
            "sub": {"essential": True, "value": user[2]},  # the account's ID, as MAS's
        },
        leeway=0,
    )  # signature (the published key), iss, aud, exp, iat, nonce, at_hash
    assert claims["nonce"] == nonce and claims["at_hash"]
    assert before - 5 <= claims["auth_time"] <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 3600
    header = json.loads(base64.urlsafe_b64decode(token["id_token"].split(".")[0] + "=="))
    keys = httpx.get(rp.server_metadata["jwks_uri"]).json()["keys"]
    assert header["alg"] == "RS256" and header["kid"] in [k["kid"] for k in keys]
    with pytest.raises(JoseError):  # a wrong nonce, or another key, is refused
        rp.parse_id_token(token, "another-nonce")
    impostor = RSAKey.generate_key(2048, parameters={"kid": header["kid"]})
    rp.server_metadata["jwks"] = KeySet([impostor]).as_dict()  # the same kid, another key
    with pytest.raises(JoseError):
        rp.parse_id_token(token, nonce)
    # As MAS: a refresh issues no new ID token, and a grant without openid has none.
    renewed = refresh(synapse_oauth, client_id, token["refresh_token"])
    assert renewed.status_code == 200 and "id_token" not in renewed.json()
    fresh = Browser(auth_url(synapse_oauth))  # code_flow starts logged out
    plain, _ = code_flow(synapse_oauth, fresh, client_id, user)
    fresh.close()
    assert "id_token" not in plain
