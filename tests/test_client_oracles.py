"""Real client libraries as oracles: matrix-nio (Python) and matrix-js-sdk (the SDK Element
Web is built on, pinned in tests/oracles/js/package-lock.json) go through the legacy flows
the harness grades, against the session's Synapse and against
stand-ins that break one rule. Where nio and a verdict disagree, one of them is wrong: the
harness's PASS must be a flow nio completes, and a FAIL one nio cannot complete, or one in
which what nio is told does not hold (a logged-out token still working).

matrix-js-sdk's OAuth 2.0 helpers go through the delegated target (`synapse-oauth`): 43's
`OAuth2` class, and 41.9.0's oidc-client-ts helpers (tests/oracles/js41), which ask for
`openid` and refuse a token response without a valid ID token. node runs the client's two
halves (`start`: discovery, registration, the authorization URL; `finish`: the code
exchange, whoami, refresh); the person's login in between is this module's, through the
embedded server's pages."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import secrets
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
from nonconformant import BreakingProxy

from mxconform.http.limits import origin
from mxconform.oauth.drivers.form import choose_form
from mxconform.targets.lifecycle import RunningTarget

nio = pytest.importorskip("nio")

pytestmark = pytest.mark.integration

CHECKS = "legacy.login.password or tokens.whoami.identity or legacy.logout.device-gone"
JS = Path(__file__).resolve().parent / "oracles" / "js"
JS41 = JS.parent / "js41"
# Where the OAuth server sends the browser back: a web client's own page, as Element Web
# registers one. Nothing listens there: the login walk stops at the redirect.
REDIRECT_URI = "https://oracle.mxconform.example.org/callback"


async def _registered(base_url: str) -> tuple[str, str]:
    """An account nio registers itself (the embedded Synapse has open registration, the
    dummy stage)."""
    name, password = f"mxc-nio-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    client = nio.AsyncClient(base_url)
    try:
        resp = await client.register(name, password)
        assert isinstance(resp, nio.RegisterResponse), resp
        return resp.user_id, password
    finally:
        await client.close()


async def _login_whoami_logout(base_url: str, user_id: str, password: str) -> dict[str, object]:
    """What nio experiences: a login, whoami with its token, a logout, then whether a new
    client holding that token is still let in."""
    seen: dict[str, object] = {}
    client = nio.AsyncClient(base_url, user_id)
    try:
        login = await client.login(password, device_name="nio oracle")
        seen["login"] = type(login).__name__
        if not isinstance(login, nio.LoginResponse):
            return seen
        who = await client.whoami()
        seen["whoami"] = (getattr(who, "user_id", None), getattr(who, "device_id", None))
        seen["device"] = login.device_id
        token = client.access_token
        seen["logout"] = type(await client.logout()).__name__
    finally:
        await client.close()
    after = nio.AsyncClient(base_url, user_id)
    after.access_token, after.user_id = token, user_id
    try:
        seen["after_logout"] = type(await after.whoami()).__name__
    finally:
        await after.close()
    return seen


def _nio(base_url: str, register_at: str) -> dict[str, object]:
    """nio's flows in an event loop of their own (the harness runs its own: tests are sync)."""

    async def flows() -> dict[str, object]:
        user_id, password = await _registered(register_at)
        seen = await _login_whoami_logout(base_url, user_id, password)
        return {**seen, "user_id": user_id}

    return asyncio.run(flows())


def test_nio_completes_every_flow_the_harness_passes(run_harness, synapse):
    seen = _nio(synapse.base_url, synapse.base_url)
    user_id = seen["user_id"]
    assert seen["login"] == "LoginResponse" and seen["logout"] == "LogoutResponse"
    assert seen["whoami"] == (user_id, seen["device"])
    assert seen["after_logout"] == "WhoamiError"  # the token ended with the logout
    run = run_harness(synapse.base_url, "-k", CHECKS)
    assert run.verdicts() and set(run.verdicts().values()) == {"PASS"}, run.verdicts()


def test_a_login_without_device_id_fails_both_nio_and_the_harness(run_harness, synapse):
    """nio's schema requires `device_id` in the login answer, as login.yaml does."""
    with BreakingProxy(synapse.base_url) as proxy:
        proxy.use("login-answers-without-device")
        seen = _nio(proxy.base_url, synapse.base_url)
        run = run_harness(proxy.base_url, "-k", "legacy.login.password")
    assert seen["login"] == "LoginError"
    assert set(run.verdicts().values()) == {"FAIL"}, run.verdicts()


def test_a_logout_that_ends_nothing_fails_the_harness_and_misleads_nio(run_harness, synapse):
    """nio is told the logout succeeded (200), yet its token still works: the deviation the
    harness FAILs is what a client would live with."""
    with BreakingProxy(synapse.base_url) as proxy:
        proxy.use("logout-does-nothing")
        seen = _nio(proxy.base_url, synapse.base_url)
        run = run_harness(proxy.base_url, "-k", "legacy.logout.device-gone")
    assert seen["logout"] == "LogoutResponse" and seen["after_logout"] == "WhoamiResponse"
    assert set(run.verdicts().values()) == {"FAIL"}, run.verdicts()


def _installed(folder: Path) -> Path:
    """The folder's matrix-js-sdk installed from its lock file (npm ci, under one lock for
    every oracle folder: the xdist workers share them); SKIP with the reason without node
    and npm. Installed again when node_modules holds another version than package.json's."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("matrix-js-sdk is an npm package: no node or npm on this machine")
    pinned = json.loads((folder / "package.json").read_text())["dependencies"]["matrix-js-sdk"]
    installed = folder / "node_modules" / "matrix-js-sdk" / "package.json"
    with open(JS / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed.exists() or json.loads(installed.read_text())["version"] != pinned:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                pytest.fail(f"npm ci in {folder.name} failed: {done.stderr[-2000:]}")
    return Path(node)


@pytest.fixture(scope="session")
def js_sdk() -> Path:
    """node, with matrix-js-sdk 43 installed in tests/oracles/js."""
    return _installed(JS)


@pytest.fixture(scope="session")
def js_sdk_41() -> Path:
    """node, with matrix-js-sdk 41.9.0 installed in tests/oracles/js41."""
    return _installed(JS41)


def _js(node: Path, base_url: str, register_at: str) -> dict[str, object]:
    user_id, password = asyncio.run(_registered(register_at))
    done = subprocess.run(
        [node, JS / "oracle.mjs", base_url, user_id, password],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "user_id": user_id}


def test_js_sdk_completes_every_flow_the_harness_passes(run_harness, synapse, js_sdk):
    seen = _js(js_sdk, synapse.base_url, synapse.base_url)
    assert "error" not in seen, seen
    assert seen["whoami"] == {"user_id": seen["user_id"], "device_id": seen["login"]["device_id"]}
    assert seen["logout"] == "ok" and seen["after_logout"] == "M_UNKNOWN_TOKEN"
    run = run_harness(synapse.base_url, "-k", CHECKS)
    assert run.verdicts() and set(run.verdicts().values()) == {"PASS"}, run.verdicts()


def test_js_sdk_and_the_harness_agree_on_a_logout_that_ends_nothing(run_harness, synapse, js_sdk):
    with BreakingProxy(synapse.base_url) as proxy:
        proxy.use("logout-does-nothing")
        seen = _js(js_sdk, proxy.base_url, synapse.base_url)
        run = run_harness(proxy.base_url, "-k", "legacy.logout.device-gone")
    assert seen["logout"] == "ok" and seen["after_logout"] == "accepted", seen
    assert set(run.verdicts().values()) == {"FAIL"}, run.verdicts()


# The OAuth flows, against the delegated target


def _https(rt: RunningTarget) -> httpx.Client:
    """A client that trusts the run's CA (the OAuth server's https face), nothing else."""
    verify = ssl.create_default_context(cafile=str(rt.ca_file))
    return httpx.Client(verify=verify, follow_redirects=False, timeout=30)


def _account(rt: RunningTarget) -> tuple[str, str, str]:
    """A fresh account on the embedded OAuth server, through its admin API: (username,
    password, the account's ID, which ID tokens carry as `sub`)."""
    admin = rt.oauth_admin
    assert admin is not None
    username, password = "js" + uuid.uuid4().hex[:10], secrets.token_urlsafe(15)
    with _https(rt) as http:
        token = http.post(
            admin.url + "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": "urn:mas:admin"},
            auth=(admin.client_id, admin.client_secret),
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        base = admin.url + "/api/admin/v1/users"
        created = http.post(base, json={"username": username}, headers=headers)
        assert created.status_code == 201, created.text
        account_id = created.json()["data"]["id"]
        done = http.post(
            f"{base}/{account_id}/set-password", json={"password": password}, headers=headers
        )
        assert done.status_code == 204, done.text
    return username, password, account_id


def _log_in(rt: RunningTarget, url: str, username: str, password: str) -> str:
    """What the person does at the authorization URL, in a user agent of its own: follow the
    redirects, fill each page's form as the harness's form driver chooses and fills it (the
    login, then the consent), until the server sends the browser to the client. Forms are
    posted only to the OAuth server. Returns that callback URL (code and state)."""
    assert rt.oauth_admin is not None
    server = origin(rt.oauth_admin.url)
    fill = {"username": username, "password": password}
    with _https(rt) as http:
        resp = http.get(url)
        for _ in range(12):
            if resp.status_code in (301, 302, 303, 307, 308):
                location = urljoin(str(resp.url), resp.headers["location"])
                if location.startswith(REDIRECT_URI):
                    return location
                resp = http.get(location)
                continue
            page = choose_form(resp.text, str(resp.url), fill)
            assert page is not None, f"no form at {resp.url} (HTTP {resp.status_code})"
            assert origin(page.action) == server, f"a form posts to {page.action}"
            resp = http.post(
                page.action,
                content=urlencode(page.fields),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
    raise AssertionError(f"the login did not end at the client: last page {resp.url}")


def _node(
    node: Path, script: Path, rt: RunningTarget, *args: str, stdin: Any = None
) -> dict[str, Any]:
    """One step of an oracle script; its last stdout line parsed. The https OAuth face is
    trusted through NODE_EXTRA_CA_CERTS (TLS verification stays on)."""
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(rt.ca_file)}
    done = subprocess.run(
        [node, script, *args],
        input=None if stdin is None else json.dumps(stdin),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "failure" not in seen, f"{seen['failure']}\n--- node stderr ---\n{done.stderr[-4000:]}"
    return dict(seen)


def _oauth_flow(
    node: Path, script: Path, rt: RunningTarget
) -> tuple[dict[str, Any], dict[str, Any], tuple[str, str, str]]:
    """start in node, the login here, finish in node: (start's output, finish's, account)."""
    account = _account(rt)
    started = _node(node, script, rt, "start", rt.base_url, REDIRECT_URI)
    callback = _log_in(rt, started["authorization_url"], account[0], account[1])
    stdin = {"keep": started["keep"], "callback_url": callback}
    finished = _node(node, script, rt, "finish", rt.base_url, REDIRECT_URI, stdin=stdin)
    return started, finished, account


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_js_sdk_43_completes_the_oauth_flow_against_the_delegated_target(js_sdk, synapse_oauth):
    started, seen, (username, _, _) = _oauth_flow(js_sdk, JS / "oauth.mjs", synapse_oauth)
    assert synapse_oauth.oauth_admin is not None
    asked = _query(started["authorization_url"])  # built from the discovered metadata
    assert origin(started["authorization_url"]) == origin(synapse_oauth.oauth_admin.url)
    assert asked["code_challenge_method"] == "S256" and asked["code_challenge"], asked
    assert asked["client_id"] == started["keep"]["context"]["clientId"]  # the registered one
    user_id, device = f"@{username}:{synapse_oauth.server_name}", seen["device_id_asked"]
    assert seen["state_echoed"] is True
    assert seen["token"]["token_type"] == "Bearer" and seen["token"]["has_refresh_token"]
    assert f"urn:matrix:client:device:{device}" in seen["token"]["scope"].split(), seen
    assert seen["whoami"] == {"user_id": user_id, "device_id": device}
    assert seen["refreshed"] is True
    assert seen["whoami_after_refresh"] == {"user_id": user_id, "device_id": device}
    # logout by revocation (js-sdk 43's OAuth2.revokeToken): the pair is ended
    assert seen["revoked"] == "ok"
    assert seen["refresh_after_revocation"] == "invalid_grant", seen
    assert seen["whoami_after_revocation"] == "M_UNKNOWN_TOKEN", seen


def test_js_sdk_41_logs_in_with_openid_and_the_id_token_it_validates(js_sdk_41, synapse_oauth):
    """41.9.0's helpers ask for `openid`; oidc-client-ts refused the token response while
    the server granted it without an ID token (issue 25). Now the login completes, with the
    ID token's iss, aud, nonce, exp and subject accepted."""
    started, seen, (username, _, account_id) = _oauth_flow(
        js_sdk_41, JS41 / "oauth.mjs", synapse_oauth
    )
    asked = _query(started["authorization_url"])
    assert "openid" in asked["scope"].split() and asked["nonce"] == started["keep"]["nonce"]
    assert asked["code_challenge_method"] == "S256", asked
    assert "openid" in seen["scope"].split(), seen  # granted, so an ID token was required
    assert seen["id_token"] is True
    claims = seen["id_token_claims"]
    assert claims["iss"] == seen["issuer"] and claims["aud"] == seen["client_id"], claims
    assert claims["nonce"] == started["keep"]["nonce"] and claims["sub"] == account_id, claims
    assert seen["profile_sub"] == account_id  # the claims the SDK hands the app
    assert seen["homeserver_url"] == synapse_oauth.base_url
    user_id = f"@{username}:{synapse_oauth.server_name}"
    device = seen["whoami"]["device_id"]
    assert seen["whoami"]["user_id"] == user_id and device, seen
    assert f"urn:matrix:org.matrix.msc2967.client:device:{device}" in seen["scope"].split()
    assert seen["has_refresh_token"] and seen["refreshed"] is True, seen
    assert seen["whoami_after_refresh"] == {"user_id": user_id, "device_id": device}
