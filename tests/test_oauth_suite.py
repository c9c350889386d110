"""The OAuth 2.0 suite against the embedded delegated target: PASS where it conforms, FAIL
where a stand-in breaks one rule. The harness runs in-process against a servers file naming
the running Synapse (or a proxy in front of it) as a remote OAuth target with admin access."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import httpx
import pytest
from nonconformant import BreakingProxy

from mxconform.spec import requirements

pytestmark = pytest.mark.integration

ADMIN_SECRET_VAR = "MXCONFORM_TEST_ADMIN_SECRET"
PROBES = ["whoami", "devices", "account-data", "profile", "sync"]
UIA_OPS = [
    "delete-devices",
    "delete-device",
    "change-password",
    "deactivate",
    "add-3pid",
    "cross-signing-replace",
    "get-login-token",
]


@pytest.fixture
def oauth_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synapse_oauth):
    """servers.yaml for one OAuth target at `base_url` (the delegated Synapse or a proxy)."""
    admin = synapse_oauth.oauth_admin
    monkeypatch.setenv(ADMIN_SECRET_VAR, admin.client_secret)

    def write(base_url: str, driver: str = "form", extra: str = "") -> Path:
        path = tmp_path / "oauth-servers.yaml"
        path.write_text(
            "defaults: [oauth-under-test]\n"
            "targets:\n"
            "  - name: oauth-under-test\n"
            f"    base_url: {base_url}\n"
            "    server_name: localhost\n"
            "    auth: [oauth]\n"
            "    spec_version: v1.18\n"
            "    max_requests_per_second: 1000\n"
            f"    tls: {{ca_file: '{synapse_oauth.ca_file}'}}\n"  # its https face's CA
            "    oauth:\n"
            f"      driver: {driver}\n"
            "      revocation_grace_s: 3\n"
            # behind the proxy, device and account pages stay on the real server's origin
            f"      login_origins: [{admin.url}]\n"
            "      admin:\n"
            f"        url: {admin.url}\n"
            f"        client_id: {admin.client_id}\n"
            f"        client_secret: '${{{ADMIN_SECRET_VAR}}}'\n" + extra
        )
        return path

    return write


@pytest.fixture(scope="module")
def oauth_proxy(synapse_oauth):
    with BreakingProxy(
        synapse_oauth.base_url,
        auth_server=synapse_oauth.oauth_admin.url,
        verify=ssl.create_default_context(cafile=str(synapse_oauth.ca_file)),
        homeserver=synapse_oauth.embedded.authserver.homeserver,
    ) as proxy:
        yield proxy


def fails(*keys: str) -> dict[str, str]:
    return {k if "[" in k else f"{k}[-]": "FAIL" for k in keys}


INTEROP = "interoperability finding: "


def infos(*keys: str) -> dict[str, str]:
    """Interop rules (OIDC) broken: INFO, its message an interoperability finding."""
    return {k if "[" in k else f"{k}[-]": "INFO" for k in keys}


QUERY_PROBES = [f"oauth.tokens.accepted.{p}[query]" for p in PROBES]

# breakage -> (-k selection, the verdicts it must produce besides PASS/INFO/SKIP; an INFO
# that is an interoperability finding counts too)
STAND_INS = {
    "token-without-id-token": ("oauth.oidc", infos("oauth.oidc.id-token")),
    "discovery-without-jwks-uri": ("oauth.oidc", infos("oauth.oidc.discovery")),
    "oauth-delete-devices-allowed": (
        "delete-devices",
        fails("oauth.uia.refused.delete-devices", "oauth.uia.refused-with-password.delete-devices"),
    ),
    "metadata-without-s256": ("metadata", fails("oauth.metadata.pkce")),
    "metadata-query-mode-only": ("metadata", fails("oauth.metadata.response-modes")),
    "metadata-without-refresh-grant": (
        "metadata",
        fails("oauth.metadata.grant-types", "oauth.metadata.device-grant"),
    ),
    "metadata-without-code": ("metadata", fails("oauth.metadata.response-types")),
    "metadata-relative-endpoint": ("metadata", fails("oauth.metadata.endpoint-uris")),
    "metadata-device-endpoint-only": ("metadata", fails("oauth.metadata.device-grant")),
    "metadata-prompt-values-not-strings": ("metadata", fails("oauth.metadata.field-types")),
    "oauth-without-cors": (
        "oauth.cors",
        {
            f"oauth.cors.preflight.{e}[-]": "WARN"
            for e in ("registration", "token", "revocation", "device-authorization")
        },
    ),
    "registration-accepts-http-redirect": ("dcr", fails("oauth.dcr.refused.web-redirect-http")),
    "revocation-needs-client-id": ("any-client", {"oauth.revoke.any-client[-]": "WARN"}),
    "revocation-does-nothing": (
        "revoke and not any-client",
        fails(
            "oauth.revoke.pair.access-token",
            "oauth.revoke.pair.refresh-token",
            "oauth.revoke.missing-token",  # the stand-in answers 200 to anything
            "oauth.tokens.kind.revoked.grant",
            "oauth.tokens.kind.revoked.refresh",
        ),
    ),
    "unknown-revocation-refused": (
        "revoke and not any-client",
        {"oauth.revoke.unknown-token[-]": "WARN"},
    ),
    "token-without-refresh-token": (
        "code-flow or oauth.refresh",
        fails(
            "oauth.authz.code-flow",
            "oauth.refresh.new-pair",
            "oauth.refresh.retry-allowed",
            "oauth.refresh.rotated",
        ),
    ),
    "token-without-expiry": (
        "code-flow or short-lived or new-pair",
        fails("oauth.authz.code-flow", "oauth.token.short-lived", "oauth.refresh.new-pair"),
    ),
    "token-without-scope": (
        "code-flow or token.scope",
        fails("oauth.authz.code-flow", "oauth.token.scope"),
    ),
    "scope-with-extra-device": ("token.scope", fails("oauth.token.scope")),
    "state-dropped": ("state-echoed", fails("oauth.authz.state-echoed")),
    "fragment-ignored": ("fragment-mode", fails("oauth.authz.fragment-mode")),
    "plain-pkce-accepted": ("pkce-required", fails("oauth.authz.pkce-required.plain")),
    "code-reusable": ("code-single-use", fails("oauth.token.code-single-use")),
    "refresh-not-retryable": ("retry-allowed", fails("oauth.refresh.retry-allowed")),
    "device-grant-never-pending": ("device.grant", fails("oauth.device.grant")),
    "no-m-oauth-stage": (
        "m-oauth",
        fails("oauth.uia.m-oauth.challenge", "oauth.uia.m-oauth.approved"),
    ),
    "whoami-wrong-device": (
        "device-bound or oauth.tokens.whoami or oauth.tokens.kind.whoami",
        fails(
            "oauth.token.device-bound",
            "oauth.tokens.whoami[header]",
            "oauth.tokens.whoami[query]",
            *(
                f"oauth.tokens.kind.whoami.{k}[{t}]"
                for k in ("grant", "refresh")
                for t in ("header", "query")
            ),
        ),
    ),
    "metadata-without-registration": ("metadata", fails("oauth.metadata.required-fields")),
    "loopback-port-refused": ("loopback-any-port", fails("oauth.authz.loopback-any-port")),
    "unregistered-redirect-followed": (
        "unregistered-redirect",
        fails("oauth.authz.unregistered-redirect"),
    ),
    "verifier-not-checked": ("wrong-verifier", fails("oauth.token.wrong-verifier")),
    "redirect-not-compared": ("redirect-must-repeat", fails("oauth.token.redirect-must-repeat")),
    "registration-refuses-native": (
        "dcr.accepted",
        fails(
            "oauth.dcr.accepted.native-scheme",
            "oauth.dcr.accepted.native-loopback",
            "oauth.dcr.accepted.native-localhost",
            "oauth.dcr.accepted.native-claimed-https",
            "oauth.dcr.accepted.unknown-types-ignored",
        ),
    ),
    "registration-defaults-to-native": ("default-web", fails("oauth.dcr.default-web")),
    "oauth-uia-obeyed": (
        "uia.refused",
        {
            f"oauth.uia.{variant}.{op}[-]": verdict
            for variant in ("refused", "refused-with-password")
            for op, verdict in (
                ("delete-devices", "FAIL"),
                ("delete-device", "FAIL"),
                ("deactivate", "FAIL"),
                ("get-login-token", "FAIL"),
                ("cross-signing-replace", "FAIL"),
                ("change-password", "FAIL"),  # a 200 that changed nothing: a false success
                ("add-3pid", "FAIL"),
            )
        },
    ),
    "oauth-uia-noop": (  # every UIA operation answers 200 and does nothing
        "uia.refused",
        {
            f"oauth.uia.{variant}.{op}[-]": "FAIL"
            for variant in ("refused", "refused-with-password")
            for op in (
                "delete-devices",
                "delete-device",
                "deactivate",
                "get-login-token",
                "cross-signing-replace",
                "change-password",
                "add-3pid",
            )
        },
    ),
    "device-delete-action-ignored": ("account", fails("oauth.account.device-delete")),
    "ignore-query-token": (
        "oauth.tokens",
        fails(
            *QUERY_PROBES,
            "oauth.tokens.whoami[query]",
            "oauth.tokens.kind.whoami.grant[query]",
            "oauth.tokens.kind.whoami.refresh[query]",
        ),
    ),
    # The token rules run on OAuth-only targets too (api("legacy", "oauth")).
    "missing-token-403": (
        "tokens.missing or tokens.error-shape",
        fails(*(f"tokens.missing.rejected.{p}" for p in PROBES)),
    ),
    "wrong-errcode": (
        "tokens.unknown or tokens.error-shape",
        fails(*(f"tokens.unknown.rejected.{p}[{t}]" for p in PROBES for t in ("header", "query"))),
    ),
    "plain-text-errors": (
        "tokens.error-shape",
        fails(
            "tokens.error-shape.missing",
            "tokens.error-shape.unknown[header]",
            "tokens.error-shape.unknown[query]",
        ),
    ),
}


@pytest.mark.parametrize("breakage", sorted(STAND_INS))
def test_each_broken_oauth_rule_turns_its_checks_fail(
    run_harness, oauth_proxy, oauth_servers, breakage
):
    selection, expected = STAND_INS[breakage]
    oauth_proxy.use(breakage)
    run = run_harness(
        oauth_proxy.base_url, "-k", selection, servers=oauth_servers(oauth_proxy.base_url)
    )
    interop = {
        f"{c['check_id']}[{c['transport'] or '-'}]"
        for c in run.checks
        if c["verdict"] == "INFO" and c["message"].startswith(INTEROP)
    }
    graded = {
        k: v
        for k, v in run.verdicts().items()
        if (v in ("FAIL", "WARN", "ERROR") or k in interop) and k != "oauth.metadata.issuer[-]"
    }
    assert graded == expected
    for check in run.checks:
        if check["verdict"] == "FAIL" and check["check_id"] != "oauth.metadata.issuer":
            assert check["message"] and check["requirements"] and check["evidence"]
        if check["message"].startswith(INTEROP):  # rests on interop rows alone
            assert check["evidence"] and check["basis"]
            assert {requirements.get(r).basis for r in check["basis"]} == {"interop"}


def test_the_conformant_proxy_changes_nothing(run_harness, oauth_proxy, oauth_servers):
    """The stand-ins' baseline: through the proxy (OAuth server included) everything passes."""
    oauth_proxy.use("conformant")
    run = run_harness(
        oauth_proxy.base_url, "-k", "oauth", servers=oauth_servers(oauth_proxy.base_url)
    )
    # the proxy is plain http, so the issuer it rewrites to itself is http: FAIL there only
    # (straight to the embedded target, https, nothing FAILs: test_main_run.py)
    assert run.with_verdict("FAIL") == {"oauth.metadata.issuer[-]"}
    assert run.with_verdict("ERROR") == set()
    verdicts = run.verdicts()
    assert verdicts["oauth.authz.code-flow[-]"] == "PASS"
    for op in UIA_OPS:
        assert verdicts[f"oauth.uia.refused.{op}[-]"] == "PASS"
        assert verdicts[f"oauth.uia.refused-with-password.{op}[-]"] == "PASS"
    assert verdicts["oauth.uia.m-oauth.approved[-]"] == "PASS"
    assert verdicts["oauth.oidc.id-token[-]"] == verdicts["oauth.oidc.discovery[-]"] == "PASS"
    refused = next(c for c in run.checks if c["check_id"] == "oauth.uia.refused.delete-devices")
    assert refused["grant"].startswith("authorization code")
    # a remote target: the accounts the run made are deactivated through the admin API
    hk = run.document["targets"][0]["housekeeping"]
    assert hk["users_created"] and set(hk["users_created"]) == set(hk["users_deactivated"])


def test_an_http_client_uri_is_allowed_so_accepting_it_is_info(
    run_harness, oauth_proxy, oauth_servers
):
    """The spec says a server MAY refuse an invalid client_uri: accepting one is recorded,
    not failed."""
    oauth_proxy.use("registration-accepts-http-client-uri")
    run = run_harness(
        oauth_proxy.base_url, "-k", "dcr", servers=oauth_servers(oauth_proxy.base_url)
    )
    verdicts = run.verdicts()
    assert verdicts["oauth.dcr.refused.client-uri-http[-]"] == "INFO"
    assert verdicts["oauth.dcr.refused.web-redirect-http[-]"] == "PASS"


def test_logo_terms_and_policy_uris_bind_the_client_so_accepting_them_is_info(
    run_harness, oauth_proxy, oauth_servers
):
    """The schema's https and common-base rules for logo_uri, tos_uri and policy_uri bind
    the client's metadata: a server that registers such a client is recorded, not failed
    (an authorisation server written elsewhere did, and was FAILed three times); the
    redirect-URI rules, which the server must validate, still hold."""
    oauth_proxy.use("registration-accepts-client-bound-uris")
    run = run_harness(
        oauth_proxy.base_url, "-k", "dcr.refused", servers=oauth_servers(oauth_proxy.base_url)
    )
    verdicts = run.verdicts()
    for case in ("logo-http", "logo-other-host", "tos-http"):
        assert verdicts[f"oauth.dcr.refused.{case}[-]"] == "INFO", verdicts
    assert verdicts["oauth.dcr.refused.web-redirect-other-host[-]"] == "PASS"
    assert "FAIL" not in verdicts.values()


def test_the_mas_admin_driver_runs_the_suite_without_pages(
    run_harness, synapse_oauth, oauth_servers
):
    """Tokens minted as personal sessions: the refusal checks run and PASS; what needs the
    authorisation pages is SKIP with the driver's reason."""
    servers = oauth_servers(synapse_oauth.base_url, driver="mas-admin")
    run = run_harness(synapse_oauth.base_url, "-k", "oauth", servers=servers)
    verdicts = run.verdicts()
    assert {k for k, v in verdicts.items() if v in ("FAIL", "ERROR")} == set()
    for op in UIA_OPS:
        assert verdicts[f"oauth.uia.refused.{op}[-]"] == "PASS"
    assert verdicts["oauth.uia.m-oauth.challenge[-]"] == "PASS"
    assert verdicts["oauth.tokens.accepted.whoami[query]"] == "PASS"
    assert verdicts["oauth.oidc.discovery[-]"] == "PASS"  # the https issuer, no proxy between
    code_flow = next(c for c in run.checks if c["check_id"] == "oauth.authz.code-flow")
    assert code_flow["verdict"] == "SKIP"
    assert "mas-admin login driver does not drive authorisation pages" in code_flow["message"]
    refused = next(c for c in run.checks if c["check_id"] == "oauth.uia.refused.delete-device")
    assert refused["grant"] == "personal session minted through MAS's admin API"


def test_the_browser_driver_logs_in_through_chromium(run_harness, synapse_oauth, oauth_servers):
    pytest.importorskip("playwright")
    if not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed")
    servers = oauth_servers(synapse_oauth.base_url, driver="browser")
    selection = "code-flow or m-oauth or uia.refused.delete-devices or device.grant"
    run = run_harness(synapse_oauth.base_url, "-k", selection, servers=servers)
    verdicts = run.verdicts()
    assert verdicts["oauth.authz.code-flow[-]"] == "PASS"
    assert verdicts["oauth.uia.m-oauth.approved[-]"] == "PASS"
    assert verdicts["oauth.uia.refused.delete-devices[-]"] == "PASS"
    assert verdicts["oauth.device.grant[-]"] == "PASS"
    flow = next(c for c in run.checks if c["check_id"] == "oauth.authz.code-flow")
    assert any(e["note"] == "browser driver" for e in flow["evidence"])


def _personal_token(synapse_oauth, username: str, device: str) -> str:
    """A token minted straight through the embedded server's admin API (as an operator would
    hand one over)."""
    admin = synapse_oauth.oauth_admin
    http = httpx.Client(verify=ssl.create_default_context(cafile=str(synapse_oauth.ca_file)))
    token = http.post(
        admin.url + "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "urn:mas:admin"},
        auth=(admin.client_id, admin.client_secret),
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    found = http.get(f"{admin.url}/api/admin/v1/users/by-username/{username}", headers=headers)
    if found.status_code == 200:
        user_id = found.json()["data"]["id"]
    else:
        made = http.post(
            f"{admin.url}/api/admin/v1/users", json={"username": username}, headers=headers
        )
        user_id = made.json()["data"]["id"]
    minted = http.post(
        f"{admin.url}/api/admin/v1/personal-sessions",
        json={
            "actor_user_id": user_id,
            "human_name": "given to the harness",
            "scope": f"urn:matrix:client:api:* urn:matrix:client:device:{device}",
        },
        headers=headers,
    )
    return str(minted.json()["data"]["attributes"]["access_token"])


def test_static_tokens_are_used_and_left_alone(
    run_harness, synapse_oauth, oauth_servers, monkeypatch
):
    """Tokens given in servers.yaml: used for the checks, destructive checks SKIP, and the
    tokens still work after the run (the harness revoked nothing it was given)."""
    tokens = [_personal_token(synapse_oauth, "given-user", f"GIVENDEVICE{i}") for i in range(3)]
    extra = "      tokens:\n"
    for i, token in enumerate(tokens):
        monkeypatch.setenv(f"MXCONFORM_TEST_TOKEN_{i}", token)
        extra += f"        - access_token: '${{MXCONFORM_TEST_TOKEN_{i}}}'\n"
    path = oauth_servers(synapse_oauth.base_url, driver="static", extra=extra)
    text = path.read_text()
    path.write_text(text[: text.index("      admin:")] + extra)  # no admin access either
    run = run_harness(
        synapse_oauth.base_url, "-k", "oauth.tokens or oauth.uia.refused", servers=path
    )
    verdicts = run.verdicts()
    assert verdicts["oauth.tokens.accepted.whoami[header]"] == "PASS"
    assert verdicts["oauth.uia.refused.add-3pid[-]"] == "PASS"
    assert verdicts["oauth.uia.refused.get-login-token[-]"] == "PASS"
    assert verdicts["oauth.uia.refused.deactivate[-]"] == "SKIP"  # destructive
    assert verdicts["oauth.uia.refused.delete-devices[-]"] == "SKIP"  # a given device
    assert not run.with_verdict("FAIL") and not run.with_verdict("ERROR")
    for token in tokens:
        who = httpx.get(
            synapse_oauth.base_url + "/_matrix/client/v3/account/whoami",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert who.status_code == 200
    assert not any(
        token in (run.outcome.report_dir / "results.json").read_text() for token in tokens
    )


def test_a_declared_oauth_api_that_is_missing_fails(run_harness, synapse, servers_file):
    """Declaring oauth for a server without it turns every OAuth check FAIL, saying why."""
    servers = servers_file(synapse.base_url, auth="[legacy, oauth]")
    run = run_harness(
        synapse.base_url, "-k", "oauth.metadata or oauth.uia.refused", servers=servers
    )
    oauth = [c for c in run.checks if c["auth_api"] == "oauth"]
    assert oauth and {c["verdict"] for c in oauth} == {"FAIL"}
    assert all("declares the OAuth 2.0 API but GET" in c["message"] for c in oauth)
    assert all("HTTP 404" in c["message"] for c in oauth)


@pytest.mark.parametrize(
    ("breakage", "failed"),
    [
        ("dcr-crashes-on-bad-metadata", "badinput.oauth.registration"),
        ("token-endpoint-bare-errors", "badinput.oauth.token"),
    ],
)
def test_each_broken_oauth_bad_input_rule_turns_its_check_fail(
    run_harness, oauth_proxy, oauth_servers, breakage, failed
):
    """Malformed bodies drawn with a fixed seed (the stand-in's trigger is among them)."""
    oauth_proxy.use(breakage)
    seeded = ("--hypothesis-seed", "20261130", "--hypothesis-examples", "20")
    servers = oauth_servers(oauth_proxy.base_url)
    run = run_harness(oauth_proxy.base_url, "-k", "badinput", *seeded, servers=servers)
    assert run.with_verdict("FAIL") == {f"{failed}[-]"}, run.verdicts()
    assert run.with_verdict("ERROR") == set()
    check = next(c for c in run.checks if c["check_id"] == failed)
    assert check["evidence"] and "smallest failing body" in check["message"]


def test_a_declared_oauth_api_is_judged_from_its_version_whatever_is_advertised(
    run_harness, oauth_proxy, oauth_servers
):
    """A target declaring the OAuth API but advertising v1.12 is held to v1.15 for its OAuth
    checks (and says so), not let off with every OAuth rule SKIPped as too new."""
    oauth_proxy.use("advertise-v1.12")
    servers = oauth_servers(oauth_proxy.base_url)
    servers.write_text(servers.read_text().replace("    spec_version: v1.18\n", ""))
    run = run_harness(oauth_proxy.base_url, "-k", "oauth.metadata", servers=servers)
    graded = [c for c in run.checks if c["verdict"] not in ("SKIP", "ERROR")]
    assert graded, run.verdicts()
    gated = [c for c in run.checks if (c.get("skip") or {}).get("why") == "version"]
    assert all("server evaluated at v1.15" in c["message"] for c in gated)  # later rules only
    assert not [c for c in gated if "applies from v1.15" in c["message"]]
    held = "held to v1.15 for the oauth API it declares (it advertises v1.12)"
    assert all(held in c["message"] for c in graded if c["verdict"] == "PASS")
    assert run.document["summary"]["oauth-under-test"]["must_applicable"] > 0
