"""The oracle of issue 25: a browser page on an origin of its own, as Element Web is,
against the delegated target (`synapse-oauth`). Headless chromium opens a tiny page on
127.0.0.1 at a port of its own and, with `fetch` in `cors` mode, sends what a web client
sends: discovery at the homeserver and the issuer, registration (JSON: preflighted), the
code exchange, a refresh, whoami with a Bearer header (preflighted), revocation, the device
authorisation. Each step's status, or the TypeError a CORS refusal is, comes back to Python.
Only the person's login is done in Python, as tests/test_client_oracles.py does it.

TLS: the OAuth server's https face is signed by the run's own CA, unknown to chromium (and
no `certutil` to put it in an NSS database). TLS stays checked, not skipped
(`ignore_https_errors`): the leaf is verified here against that CA and for 127.0.0.1, then
chromium accepts that one key (`--ignore-certificate-errors-spki-list`)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mxconform.http.limits import origin
from mxconform.oauth.drivers.browser import CHROMIUM_FLAGS
from mxconform.oauth.drivers.form import choose_form
from mxconform.targets.lifecycle import RunningTarget

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
pytestmark = [pytest.mark.integration, NO_CHROMIUM]
sync_api = pytest.importorskip("playwright.sync_api")

# The web client the page registers, as a deployed Element registers its own https origin
# (the server takes an https client_uri on a DNS name only). Nothing listens there: the
# login walk stops at the redirect.
CLIENT_URI = "https://web-client.mxconform.example.org/"
REDIRECT_URI = CLIENT_URI + "callback"
API = "urn:matrix:client:api:*"
DEVICE = "urn:matrix:client:device:"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CLIENT = {
    "client_name": "mxconform browser-origin oracle", "client_uri": CLIENT_URI,
    "application_type": "web", "redirect_uris": [REDIRECT_URI],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token", DEVICE_GRANT],
}  # fmt: skip
# One fetch from the page: its status and body, or the error a CORS refusal gives.
FETCH = """async ([url, method, headers, body]) => {
  try {
    const r = await fetch(url, {method, headers, body, mode: "cors", credentials: "omit",
                                signal: AbortSignal.timeout(20000)});
    const text = await r.text();
    try { return {status: r.status, body: JSON.parse(text)}; }
    catch { return {status: r.status, text: text.slice(0, 300)}; }
  } catch (e) { return {error: `${e.name}: ${e.message}`}; }
}"""
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Site(ThreadingHTTPServer):
    """A loopback origin: the page at any GET path, `{"ok": true}` at /data and to anything
    else, no CORS header on any of it, and every request line written down (so a refusal is
    shown to be the browser's: the request did reach the server)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    server: Site

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _answer(self) -> None:
        self.server.seen.append(f"{self.command} {self.path}")
        html = self.command == "GET" and self.path != "/data"
        body = b"<!doctype html><title>a web client</title>" if html else b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if html else "application/json")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_OPTIONS = _answer


def _pin(rt: RunningTarget) -> str:
    """The SHA-256 of the issuer's leaf SPKI (base64), once the leaf is verified here
    against the run's CA and for the issuer's host (chromium then checks neither)."""
    assert rt.oauth_issuer is not None and rt.ca_file is not None
    host, port = urlsplit(rt.oauth_issuer).hostname or "", urlsplit(rt.oauth_issuer).port or 443
    context = ssl.create_default_context(cafile=str(rt.ca_file))
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


class Page:
    """The page in chromium, and what its console said (chromium names a CORS refusal there).
    `get` and `post` are one step each: the fetch, and its status asserted."""

    def __init__(self, page: Any) -> None:
        self.page, self.console = page, []
        page.on("console", lambda m: self.console.append(m.text))

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        return self.page.evaluate(FETCH, [url, method, headers or {}, body])

    def get(self, step: str, url: str, headers: Any = None) -> dict[str, Any]:
        return self._ok(step, self.fetch(url, "GET", headers), 200)

    def post(self, step: str, url: str, form: Any, status: int = 200) -> dict[str, Any]:
        """A form (a dict), or a JSON text: not a "simple" request, so preflighted."""
        json_type = {"Content-Type": "application/json"}
        body, headers = (urlencode(form), FORM) if isinstance(form, dict) else (form, json_type)
        return self._ok(step, self.fetch(url, "POST", headers, body), status)

    def _ok(self, step: str, seen: dict[str, Any], status: int) -> dict[str, Any]:
        assert seen.get("status") == status, f"{step}: {seen}; console: {self.console}"
        return dict(seen.get("body") or {})


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[Site, Site]]:
    """The page's origin, and another one that sends no CORS header."""
    page, bare = Site(), Site()
    yield page, bare
    for site in (page, bare):
        site.shutdown()
        site.server_close()


@pytest.fixture
def page(synapse_oauth: RunningTarget, sites: tuple[Site, Site]) -> Iterator[Page]:
    """The page open in a fresh chromium that trusts the issuer's pinned key."""
    pin = f"--ignore-certificate-errors-spki-list={_pin(synapse_oauth)}"
    args = ["--headless", *CHROMIUM_FLAGS, pin]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            tab = browser.new_page()
            tab.goto(sites[0].url + "/client")
            yield Page(tab)
        finally:
            browser.close()


def _https(rt: RunningTarget) -> httpx.Client:
    assert rt.ca_file is not None
    verify = ssl.create_default_context(cafile=str(rt.ca_file))
    return httpx.Client(verify=verify, follow_redirects=False, timeout=30)


def _account(rt: RunningTarget) -> tuple[str, str]:
    """A fresh account on the OAuth server, through its admin API."""
    assert rt.oauth_admin is not None
    url, secret = rt.oauth_admin.url, (rt.oauth_admin.client_id, rt.oauth_admin.client_secret)
    username, password = "web" + uuid.uuid4().hex[:10], secrets.token_urlsafe(15)
    with _https(rt) as http:
        grant = {"grant_type": "client_credentials", "scope": "urn:mas:admin"}
        token = http.post(url + "/oauth2/token", data=grant, auth=secret).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        created = http.post(url + "/api/admin/v1/users", json={"username": username}, headers=auth)
        assert created.status_code == 201, created.text
        done = f"{url}/api/admin/v1/users/{created.json()['data']['id']}/set-password"
        assert http.post(done, json={"password": password}, headers=auth).status_code == 204
    return username, password


def _log_in(rt: RunningTarget, url: str, username: str, password: str) -> dict[str, str]:
    """The person at the authorization URL: each page's form filled (login, consent) and
    posted to the OAuth server only, until it sends the browser to the client. Returns the
    parameters of that redirect (code and state)."""
    assert rt.oauth_admin is not None
    server, fill = origin(rt.oauth_admin.url), {"username": username, "password": password}
    with _https(rt) as http:
        resp = http.get(url)
        for _ in range(12):
            if resp.is_redirect:
                location = urljoin(str(resp.url), resp.headers["location"])
                if location.startswith(REDIRECT_URI):
                    parts = urlsplit(location)
                    return {k: v[0] for k, v in parse_qs(parts.query or parts.fragment).items()}
                resp = http.get(location)
                continue
            form = choose_form(resp.text, str(resp.url), fill)
            assert form is not None and origin(form.action) == server, f"at {resp.url}: {form}"
            resp = http.post(form.action, content=urlencode(form.fields), headers=FORM)
    raise AssertionError(f"the login did not end at the client: last page {resp.url}")


def test_a_page_on_its_own_origin_does_what_a_web_client_does(page: Page, synapse_oauth):
    """Each request a web client sends, from the page, in the order it needs them; each
    must be answered (its status, its body readable) rather than withheld by the browser."""
    rt = synapse_oauth
    # 1-2. Discovery: the homeserver names the issuer; the issuer's metadata at both
    # well-known paths, and the keys a client checks ID tokens with.
    issuer = page.get("auth_metadata", rt.base_url + "/_matrix/client/v1/auth_metadata")["issuer"]
    assert origin(issuer) == origin(rt.oauth_issuer or ""), issuer
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        meta = page.get(path, issuer.rstrip("/") + path)
        assert meta["issuer"] == issuer, meta
    assert page.get("jwks_uri", meta["jwks_uri"])["keys"]
    token_url = meta["token_endpoint"]
    # 3. Registration, with a JSON body (preflighted).
    registered = page.post("registration", meta["registration_endpoint"], json.dumps(CLIENT), 201)
    client_id = registered["client_id"]
    # 4. The code exchange, for a code the person's login (here, in Python) gave the client.
    verifier, state, device = secrets.token_urlsafe(48), secrets.token_urlsafe(9), uuid.uuid4().hex
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    asked = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": f"{API} {DEVICE}{device}", "state": state,
        "code_challenge": challenge.decode(), "code_challenge_method": "S256",
    }  # fmt: skip
    back = _log_in(rt, meta["authorization_endpoint"] + "?" + urlencode(asked), *_account(rt))
    assert back.get("state") == state and back.get("code"), back
    exchange = {
        "grant_type": "authorization_code", "code": back["code"], "redirect_uri": REDIRECT_URI,
        "client_id": client_id, "code_verifier": verifier,
    }  # fmt: skip
    tokens = page.post("token", token_url, exchange)
    assert tokens["access_token"] and tokens["refresh_token"], tokens
    # 5. A refresh.
    refresh = {"grant_type": "refresh_token", "client_id": client_id}
    renewed = page.post("refresh", token_url, {**refresh, "refresh_token": tokens["refresh_token"]})
    assert renewed["access_token"] != tokens["access_token"], renewed
    # 8. whoami with a Bearer header (preflighted), while the token is alive.
    whoami = rt.base_url + "/_matrix/client/v3/account/whoami"
    who = page.get("whoami", whoami, {"Authorization": f"Bearer {renewed['access_token']}"})
    assert who["device_id"] == device and who["user_id"].startswith("@web"), who
    # 6. Revocation; it ends the pair, and the token endpoint's refusal is readable too.
    revoke = {"token": renewed["access_token"], "token_type_hint": "access_token"}
    page.post("revocation", meta["revocation_endpoint"], {**revoke, "client_id": client_id})
    again = {**refresh, "refresh_token": renewed["refresh_token"]}
    assert page.post("refresh after revocation", token_url, again, 400)["error"] == "invalid_grant"
    # 7. The device authorisation grant, started from the page, and its first poll.
    assert "device_authorization_endpoint" in meta, sorted(meta)
    start = {"client_id": client_id, "scope": f"{API} {DEVICE}{uuid.uuid4().hex}"}
    grant = page.post("device authorization", meta["device_authorization_endpoint"], start)
    assert grant["device_code"] and grant["user_code"] and grant["verification_uri"], grant
    poll = {"grant_type": DEVICE_GRANT, "device_code": grant["device_code"], "client_id": client_id}
    assert page.post("device poll", token_url, poll, 400)["error"] == "authorization_pending"


def test_the_page_notices_a_server_that_sends_no_cors_headers(page: Page, sites):
    """The negative proof: the same fetch at an origin without CORS headers is a TypeError
    although the response came (a plain GET), and a JSON POST never leaves the preflight."""
    bare = sites[1]
    bare.seen.clear()
    assert page.fetch(bare.url + "/data") == {"error": "TypeError: Failed to fetch"}
    posted = page.fetch(bare.url + "/register", "POST", {"Content-Type": "application/json"}, "{}")
    assert posted == {"error": "TypeError: Failed to fetch"}
    assert bare.seen == ["GET /data", "OPTIONS /register"], bare.seen  # no POST after it
    assert any("CORS policy" in line for line in page.console), page.console
