"""Credentials go only where they were configured: hostile servers on loopback point the
harness at another loopback port that records; it must receive nothing."""

from __future__ import annotations

import json
from contextlib import suppress
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from hostile import Seen, fake_oauth_server, misdirecting_homeserver, recording, reply, serve

from conftest import HarnessRun
from mxconform.cli import parser, run_suites
from mxconform.errors import HarnessError
from mxconform.http.client import MatrixClient, Pacer, RequestPolicy
from mxconform.http.credentials import bearer_header, query_param
from mxconform.http.evidence import Recorder
from mxconform.http.limits import origin
from mxconform.http.redact import SecretRegistry
from mxconform.legacy.registration import register_shared_secret as _register_shared_secret
from mxconform.oauth.client import REDIRECT_URI, Metadata, OAuthApi
from mxconform.oauth.drivers import make_driver
from mxconform.oauth.drivers.base import Account, DriverError
from mxconform.oauth.drivers.mas_admin import MasAdminApi
from mxconform.oauth.origins import bind, named_origins
from mxconform.targets.config import OAuthConfig, Target
from mxconform.targets.lifecycle import AdminAccess, RunningTarget

PASSWORD = "hunter2-password-value"
ADMIN_SECRET = "admin-client-secret-value"


def client_for(base_url: str, http: httpx.AsyncClient) -> MatrixClient:
    return MatrixClient(http, base_url, Recorder(), SecretRegistry(), Pacer(1000), RequestPolicy())


def test_origins_compare_scheme_host_and_port():
    assert origin("HTTPS://Example.org:443/x?y") == "https://example.org"
    assert origin("http://127.0.0.1:8008/") == "http://127.0.0.1:8008"
    assert origin("https://example.org:8448") != origin("https://example.org")
    assert origin("http://example.org") != origin("https://example.org")


async def test_credentials_never_go_to_an_origin_nobody_named():
    with serve(recording) as home, serve(recording) as foreign:
        async with httpx.AsyncClient() as http:
            client = client_for(home.url, http)
            for creds in (bearer_header("tok-abcdef123"), query_param("tok-abcdef123")):
                with pytest.raises(HarnessError, match=f"to {foreign.url} refused"):
                    await client.request("GET", foreign.url + "/x", credentials=creds)
            with pytest.raises(HarnessError, match="refused"):
                await client.request(
                    "GET", foreign.url + "/x", headers={"authorization": "Bearer tok-abcdef123"}
                )
            assert not foreign.requests and not client.recorder.exchanges
            await client.request("GET", foreign.url + "/x")  # no credentials: allowed
            await client.request(
                "GET",
                foreign.url + "/y",
                credentials=bearer_header("t"),
                allow_origins=[foreign.url],
            )
            await client.request("GET", "/z", credentials=bearer_header("t"))
    assert [r.path for r in foreign.requests] == ["/x", "/y"]
    assert [r.path for r in home.requests] == ["/z"]


async def test_a_secret_in_the_body_or_url_never_goes_to_an_origin_nobody_named():
    refresh = "mxc-refresh-token-value-123"
    with serve(recording) as home, serve(recording) as foreign:
        async with httpx.AsyncClient() as http:
            client = client_for(home.url, http)
            client.secrets.add(refresh, "refresh_token")
            sends = [
                {"form": {"grant_type": "refresh_token", "refresh_token": refresh}},
                {"form": [("token", refresh)]},
                {"json": {"nested": [{"token": refresh}]}},
                {"content": f"token={refresh}".encode()},
                {"params": {"t": refresh}},
                {"headers": {"X-Anything": refresh}},
            ]
            for send in sends:
                with pytest.raises(HarnessError, match=f"to {foreign.url} refused"):
                    await client.request("POST", foreign.url + "/oauth2/token", **send)
            with pytest.raises(HarnessError, match="refused"):
                await client.request("GET", f"{foreign.url}/cb?code={refresh}")
            assert not foreign.requests and not client.recorder.exchanges
            await client.request("POST", foreign.url + "/x", form={"token": "not-a-secret"})
            await client.request(
                "POST", foreign.url + "/y", form={"token": refresh}, allow_origins=[foreign.url]
            )
            await client.request("POST", "/z", form={"token": refresh})
    assert [r.path for r in foreign.requests] == ["/x", "/y"]
    assert refresh.encode() not in foreign.requests[0].body
    assert [r.path for r in home.requests] == ["/z"]


async def test_the_admin_secret_is_not_sent_to_a_token_endpoint_elsewhere():
    with serve(recording) as foreign, serve(fake_oauth_server(foreign.url)) as admin:
        async with httpx.AsyncClient() as http:
            client = client_for(admin.url, http)
            api = MasAdminApi(AdminAccess(admin.url, "mxc-admin", ADMIN_SECRET))
            with pytest.raises(HarnessError) as caught:
                await api.create_user(client, "someone", PASSWORD)
    assert admin.url in str(caught.value) and foreign.url in str(caught.value)
    assert not foreign.requests
    assert [r.path for r in admin.requests] == ["/.well-known/openid-configuration"]


async def test_the_admin_token_endpoint_comes_from_the_admin_servers_own_metadata():
    def admin_server(h, seen, stub):
        if seen.path.startswith("/.well-known/oauth-authorization-server"):
            reply(h, 200, {"token_endpoint": stub.url + "/oauth2/token"})
        elif seen.path == "/oauth2/token":
            reply(h, 200, {"access_token": "admin-access-token", "token_type": "Bearer"})
        elif seen.path == "/api/admin/v1/users/by-username/someone":
            reply(h, 200, {"data": {"id": "01ADMINID"}})
        else:
            reply(h, 404, {})

    with serve(recording) as target, serve(admin_server) as admin:
        async with httpx.AsyncClient() as http:
            client = client_for(target.url, http)  # the target is elsewhere: that is fine
            api = MasAdminApi(AdminAccess(admin.url, "mxc-admin", ADMIN_SECRET))
            assert await api.find_user(client, "someone") == "01ADMINID"
    assert not target.requests
    paths = [r.path for r in admin.requests]
    assert paths == [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/oauth2/token",
        "/api/admin/v1/users/by-username/someone",
    ]
    assert admin.requests[2].headers["Authorization"].startswith("Basic ")


def _driver(server_url: str, login_origins: list[str], template: MatrixClient):
    config = OAuthConfig(driver="form", login_origins=login_origins)
    metadata = Metadata(
        {"issuer": server_url + "/", "authorization_endpoint": server_url + "/authorize"},
        "/m",
        frozenset({origin(server_url), *config.login_origins}),  # as servers.yaml names them
    )
    return make_driver(config, template, SecretRegistry(), None, metadata.origins)


async def test_the_form_driver_posts_no_password_to_a_foreign_form_action():
    account = Account("someone", PASSWORD, "@someone:hs")
    with serve(recording) as foreign, serve(fake_oauth_server(foreign.url)) as server:
        async with httpx.AsyncClient() as http:
            driver = _driver(server.url, [], client_for(server.url, http))
            with pytest.raises(DriverError, match=f"posts to {foreign.url}, which is not"):
                await driver.authorize(
                    account, server.url + "/authorize", REDIRECT_URI, Recorder(), False
                )
            with pytest.raises(DriverError, match=foreign.url):
                await driver.password_works(
                    account, PASSWORD, server.url + "/authorize", Recorder()
                )
            await driver.close()
    assert not foreign.requests
    assert all(r.method == "GET" and PASSWORD.encode() not in r.body for r in server.requests)


async def test_login_origins_allow_a_separate_login_server():
    account = Account("someone", PASSWORD, "@someone:hs")
    with serve(recording) as login, serve(fake_oauth_server(login.url)) as server:
        async with httpx.AsyncClient() as http:
            driver = _driver(server.url, [login.url], client_for(server.url, http))
            assert await driver.password_works(
                account, PASSWORD, server.url + "/authorize", Recorder()
            )
    assert [r.method for r in login.requests] == ["POST"]
    assert PASSWORD.encode() in login.requests[0].body


async def test_shared_secret_provisioning_talks_only_to_the_base_url():
    def synapse(h, seen, stub):
        if seen.method == "GET":
            reply(h, 200, {"nonce": "nonce-123"})
        else:
            reply(h, 200, {"user_id": "@u:hs", "access_token": "tok-abcdef", "device_id": "D"})

    with serve(synapse) as target:
        async with httpx.AsyncClient() as http:
            client = client_for(target.url, http)
            await _register_shared_secret(client, "shared-secret-value", "u", PASSWORD)
    assert [r.path for r in target.requests] == ["/_synapse/admin/v1/register"] * 2
    assert all(e.url.startswith(target.url + "/") for e in client.recorder.exchanges)


# ---- the whole harness against a homeserver whose metadata points elsewhere -------------

_CREDENTIAL_FIELDS = {
    "password",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "code",
    "code_verifier",
    "client_secret",
    "device_code",
}


def _no_credential(seen: list[Seen], *secrets: str) -> None:
    """Nothing that reached the recording origin carries a credential anywhere."""
    for r in seen:
        assert not {k.lower() for k in r.headers} & {"authorization", "proxy-authorization"}
        fields = {k for k, _ in parse_qsl(urlsplit(r.path).query)}
        fields |= {k for k, _ in parse_qsl(r.body.decode(errors="replace"))}
        with suppress(ValueError):
            data = json.loads(r.body or b"null")
            fields |= set(data) if isinstance(data, dict) else set()
        assert not fields & _CREDENTIAL_FIELDS, (r.method, r.path)
        for value in secrets:
            assert value not in r.path and value.encode() not in r.body
            assert all(value not in v for v in r.headers.values())


def _run_against(tmp_path: Path, base_url: str, monkeypatch: pytest.MonkeyPatch) -> HarnessRun:
    """An in-process `mxconform run` of the OAuth checks against one remote target with a
    given account (the operator's password) and the form driver."""
    monkeypatch.setenv("MXCONFORM_TEST_OAUTH_PASSWORD", PASSWORD)
    servers = tmp_path / "servers.yaml"
    servers.write_text(
        "defaults: [hostile]\n"
        "targets:\n"
        "  - name: hostile\n"
        f"    base_url: {base_url}\n"
        "    server_name: localhost\n"
        "    auth: [oauth]\n"
        "    max_requests_per_second: 1000\n"
        "    oauth:\n"
        "      driver: form\n"
        "      accounts: [{username: tester, password: '${MXCONFORM_TEST_OAUTH_PASSWORD}'}]\n"
    )
    args = parser().parse_args(
        ["run", "--servers", str(servers), "--report-dir", str(tmp_path / "r"), "-k", "oauth"]
    )
    return HarnessRun(run_suites(args))


def _one_error(run: HarnessRun) -> str:
    """The one reason every check that needs the OAuth metadata was given."""
    errors = {c["message"] for c in run.checks if c["verdict"] == "ERROR"}
    assert len(errors) == 1, errors
    assert not run.with_verdict("FAIL")
    assert len(run.with_verdict("ERROR")) > 20  # the OAuth checks, not one of them
    return errors.pop()


@pytest.mark.parametrize("keys", [("issuer",), ("issuer", "authorization_endpoint")])
def test_an_issuer_mix_up_sends_the_other_origin_nothing_and_is_one_error(
    tmp_path, monkeypatch, keys
):
    with serve(recording) as foreign, serve(misdirecting_homeserver(foreign.url, keys)) as home:
        run = _run_against(tmp_path, home.url, monkeypatch)
    _no_credential(foreign.requests, PASSWORD)
    message = _one_error(run)
    assert foreign.url in message and home.url in message
    assert f"oauth.issuer: {foreign.url}/" in message
    assert not any(r.method == "POST" for r in home.requests)


def test_foreign_endpoints_receive_no_credential_and_are_one_error(tmp_path, monkeypatch):
    keys = ("revocation_endpoint", "registration_endpoint", "device_authorization_endpoint")
    with serve(recording) as foreign, serve(misdirecting_homeserver(foreign.url, keys)) as home:
        run = _run_against(tmp_path, home.url, monkeypatch)
    _no_credential(foreign.requests, PASSWORD)
    message = _one_error(run)
    assert foreign.url in message and home.url in message
    assert f"oauth.login_origins: [{foreign.url}]" in message
    assert all(key in message for key in keys)


async def test_the_oauth_api_sends_no_token_to_a_foreign_endpoint_even_unchecked():
    """Behind the metadata check, the client guard: a revocation (a refresh token in a form)
    or a registration to an origin servers.yaml does not name is refused before sending."""
    refresh = "mxc-refresh-token-to-revoke"
    with serve(recording) as foreign, serve(recording) as home:
        async with httpx.AsyncClient() as http:
            client = client_for(home.url, http)
            client.secrets.add(refresh, "refresh_token")
            data = {"issuer": home.url + "/", "revocation_endpoint": foreign.url + "/revoke"}
            api = OAuthApi(client, Metadata(data, "/m", frozenset({home.url})))
            with pytest.raises(HarnessError, match=f"to {foreign.url} refused"):
                await api.revoke("client-id", refresh)
    assert not foreign.requests and not home.requests


def test_named_origins_come_from_servers_yaml_and_the_embedded_target():
    target = Target(
        name="t",
        base_url="https://matrix.example.org",
        server_name="example.org",
        auth=["oauth"],
        oauth=OAuthConfig(
            issuer="https://auth.example.org/", login_origins=["https://sso.example.org:8443"]
        ),
    )
    running = RunningTarget(target, "https://matrix.example.org", "example.org", None)
    assert named_origins(target, running) == {
        "https://matrix.example.org",
        "https://auth.example.org",
        "https://sso.example.org:8443",
    }
    embedded = RunningTarget(
        target.model_copy(update={"oauth": None}),
        "http://127.0.0.1:8008",
        "localhost",
        None,
        oauth_issuer="https://127.0.0.1:8443/",
    )
    assert named_origins(embedded.target, embedded) == {
        "http://127.0.0.1:8008",
        "https://127.0.0.1:8443",
    }
    metadata = Metadata({"issuer": "https://127.0.0.1:8443/", "jwks_uri": "https://x.org/"}, "/")
    bound = bind(metadata, named_origins(embedded.target, embedded), "t")
    assert bound.origins == {"http://127.0.0.1:8008", "https://127.0.0.1:8443"}


def test_admin_without_url_needs_the_issuer_from_servers_yaml():
    admin = {"client_id": "c", "client_secret": "${X}"}
    with pytest.raises(ValueError, match=r"oauth\.issuer"):
        OAuthConfig.model_validate({"admin": admin})
    assert OAuthConfig.model_validate({"admin": admin, "issuer": "https://auth.example.org/"})


def test_a_shard_child_attached_to_the_embedded_target_knows_its_issuer(monkeypatch):
    """`--jobs` children attach to the parent's target: its OAuth issuer goes with it, or
    every OAuth check of the shard would be ERROR for an origin nobody named."""
    import io

    from mxconform.targets import lifecycle

    target = Target(
        name="synapse-oauth", embedded="synapse-oauth", server_name="localhost", auth=["oauth"]
    )
    running = RunningTarget(
        target, "http://127.0.0.1:8008", "localhost", None, oauth_issuer="https://127.0.0.1:8443/"
    )
    monkeypatch.setenv(lifecycle.ATTACH_VAR, target.name)
    monkeypatch.setattr(lifecycle, "_handed", {})
    monkeypatch.setattr(lifecycle, "_handover", [io.StringIO(lifecycle.attachment(running))])
    child = lifecycle.attached(target)
    assert child is not None and child.oauth_issuer == "https://127.0.0.1:8443/"
    assert named_origins(target, child) == {"http://127.0.0.1:8008", "https://127.0.0.1:8443"}
