"""servers.yaml validation: each bad input gets one clear error naming file, key and problem."""

from pathlib import Path

import pytest

from mxconform.targets.config import ConfigError, SynapseSharedSecret
from mxconform.targets.loading import load_servers

GOOD = """
defaults: [local]
targets:
  - name: local
    embedded: synapse-legacy
    auth: [legacy]
    provisioning: {method: synapse-shared-secret}
  - name: staging
    base_url: https://matrix.example.org
    server_name: example.org
    auth: [legacy, oauth]
    provisioning: {method: synapse-shared-secret, shared_secret: "${STAGING_SECRET}"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "servers.yaml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_servers(write(tmp_path, text))
    return str(caught.value)


def test_valid_file_loads(tmp_path):
    servers = load_servers(write(tmp_path, GOOD))
    assert [t.name for t in servers.select([])] == ["local"]
    staging = servers.select(["staging"])[0]
    assert staging.offers("oauth") and staging.base_url == "https://matrix.example.org"


def test_the_checkout_servers_yaml_is_valid():
    servers = load_servers(Path(__file__).parent.parent / "servers.yaml")
    assert servers.select([])[0].embedded == "synapse-legacy"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD.replace("auth: [legacy]\n", "auth: [legacy]\n    colour: blue\n", 1),
            "targets[0]: unknown key 'colour'",
        ),
        (
            GOOD.replace("auth: [legacy]\n", "auth: [legacy]\n    admin_ulr: http://x\n", 1),
            "targets[0]: unknown key 'admin_ulr' (did you mean 'admin_url'?)",
        ),
        (
            GOOD.replace("defaults: [local]", "defualts: [local]"),
            "servers.yaml: unknown key 'defualts' (did you mean 'defaults'?)",
        ),
        (GOOD.replace("    auth: [legacy]\n", "", 1), "targets[0].auth: required key is missing"),
        (GOOD.replace("auth: [legacy]", "auth: [saml]", 1), "targets[0].auth[0]: expected"),
        (
            GOOD.replace("method: synapse-shared-secret}", "method: carrier-pigeon}", 1),
            "targets[0].provisioning: unknown method",
        ),
        (
            GOOD.replace('"${STAGING_SECRET}"', "hunter2"),
            "targets[1].provisioning.shared_secret: secrets must be given as an environment",
        ),
        (
            GOOD.replace("base_url: https://matrix.example.org", "base_url: ftp://x"),
            "targets[1].base_url: expected http(s)://host",
        ),
        (
            GOOD.replace("    server_name: example.org\n", ""),
            "targets[1]: a non-embedded target needs server_name",
        ),
        (
            GOOD.replace("defaults: [local]", "defaults: [nowhere]"),
            "defaults name unknown targets: nowhere",
        ),
        (GOOD.replace("name: staging", "name: local"), "repeated: local"),
        ("defaults: [a]\ntargets: [\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_bad_input_gets_a_clear_error(tmp_path, text, message):
    error = error_for(tmp_path, text)
    assert str(tmp_path / "servers.yaml") in error
    assert message in error


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_servers(tmp_path / "nope.yaml")


def test_unknown_server_lists_the_names(tmp_path):
    servers = load_servers(write(tmp_path, GOOD))
    with pytest.raises(
        ConfigError, match="unknown target 'prod'; targets in this file: local, staging"
    ):
        servers.select(["prod"])


def test_missing_env_var_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("STAGING_SECRET", raising=False)
    staging = load_servers(write(tmp_path, GOOD)).select(["staging"])[0]
    assert isinstance(staging.provisioning, SynapseSharedSecret)
    secret = staging.provisioning.shared_secret
    assert secret is not None
    with pytest.raises(ConfigError, match="environment variable STAGING_SECRET is not set"):
        secret.resolve("staging")
    monkeypatch.setenv("STAGING_SECRET", "s3cret-value")
    assert secret.resolve("staging") == "s3cret-value"


def test_cli_reports_user_errors_without_traceback(tmp_path, capsys):
    from mxconform.cli import main

    path = write(tmp_path, GOOD.replace("auth: [legacy]", "auth: []", 1))
    assert main(["targets", "--servers", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mxconform: error: ") and "Traceback" not in err
    assert main(["run", "--servers", str(write(tmp_path, GOOD)), "--server", "prod"]) == 2
    assert "targets in this file: local, staging" in capsys.readouterr().err


def test_known_issues_file_is_validated_and_matched(tmp_path):
    from mxconform.targets.loading import load_known_issues

    servers = load_servers(
        write(
            tmp_path,
            GOOD.replace("auth: [legacy]\n", "auth: [legacy]\n    known_issues: known.yaml\n", 1),
        )
    )
    local = servers.select(["local"])[0]
    (tmp_path / "known.yaml").write_text(
        "known_issues:\n  - check: a.b\n    transport: query\n    reason: r\n"
        "    link: https://example.org/1\n"
    )
    [issue] = load_known_issues(local, tmp_path / "servers.yaml")
    assert issue.covers("a.b", "query") and not issue.covers("a.b", "header")
    (tmp_path / "known.yaml").write_text("known_issues:\n  - check: a.b\n    reason: r\n")
    with pytest.raises(ConfigError, match=r"known.yaml: known_issues\[0\].link: required"):
        load_known_issues(local, tmp_path / "servers.yaml")


def test_static_users_and_registration_token_take_env_secrets(tmp_path, monkeypatch):
    text = GOOD + (
        "  - name: given\n    base_url: https://hs.example.org\n    server_name: example.org\n"
        "    auth: [legacy]\n    provisioning:\n      method: static-users\n      users:\n"
        "        - {user_id: '@alice:example.org', password: '${ALICE_PW}'}\n"
        "  - name: tokened\n    base_url: https://hs.example.org\n    server_name: example.org\n"
        "    auth: [legacy]\n"
        "    provisioning: {method: registration-token, token: '${REG_TOKEN}'}\n"
    )
    servers = load_servers(write(tmp_path, text))
    monkeypatch.delenv("ALICE_PW", raising=False)
    [(where, ref)] = servers.select(["given"])[0].secret_refs()
    assert where.endswith("users[0].password")
    with pytest.raises(ConfigError, match="ALICE_PW is not set"):
        ref.resolve(where)
    assert servers.select(["tokened"])[0].secret_refs()[0][1].variable == "REG_TOKEN"
    inline = text.replace("'${ALICE_PW}'", "hunter2")
    assert "users[0].password: secrets must be given" in error_for(tmp_path, inline)


LIMITED = """
defaults: [staging]
targets:
  - name: staging
    base_url: https://matrix.example.org
    server_name: example.org
    auth: [oauth]
    deadline_s: 45
    max_response_bytes: 1048576
    rate_limit_budget_429: 4
    rate_limit_budget_s: 60
    oauth: {login_origins: ["https://Login.Example.org/", "https://sso.example.org:8443"]}
    tls: {ca_file: ca.pem}
"""


def test_limits_tls_and_login_origins_load(tmp_path):
    ca = tmp_path / "ca.pem"
    import ssl

    ca.write_text(ssl.DER_cert_to_PEM_cert(_self_signed_der()))
    target = load_servers(write(tmp_path, LIMITED)).select([])[0]
    assert target.limits() == {
        "timeout_s": 10.0,
        "deadline_s": 45.0,
        "max_response_bytes": 1048576,
        "max_requests_per_second": 20.0,
        "housekeeping_concurrency": 4,
        "rate_limit_budget_429": 4,
        "rate_limit_budget_s": 60.0,
        "failure_budget": 5,
        "time_budget_s": None,
    }
    assert target.oauth is not None
    assert target.oauth.login_origins == [
        "https://login.example.org",
        "https://sso.example.org:8443",
    ]
    assert target.tls.ca_file == str(ca.resolve()) and target.ssl_context() is not False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("tls: {ca_file: ca.pem}", "targets[0].tls.ca_file: no such file"),
        ("tls: {ca_file: ca.pem, verify: false}", "ca_file has no effect with verify: false"),
        ("oauth: {login_origins: [login.example.org]}", "is not an origin like"),
        ("oauth: {login_origins: ['https://x.org/login']}", "is not an origin like"),
        ("max_response_bytes: 10", "max_response_bytes: Input should be greater than or equal"),
        ("rate_limit_budget_429: 0", "rate_limit_budget_429: Input should be greater"),
    ],
)
def test_bad_limits_and_tls_are_one_line_errors(tmp_path, change, message):
    text = LIMITED.split("    deadline_s")[0] + "    " + change + "\n"
    assert message in error_for(tmp_path, text)


def test_an_unreadable_ca_bundle_is_a_config_error(tmp_path):
    (tmp_path / "ca.pem").write_text("not a certificate")
    text = LIMITED.split("    deadline_s")[0] + "    tls: {ca_file: ca.pem}\n"
    assert "not a usable CA bundle" in error_for(tmp_path, text)


def _self_signed_der() -> bytes:
    from tls_certs import make_ca

    return make_ca().cert_der


def test_an_oauth_account_s_name_may_come_from_the_environment(tmp_path, monkeypatch):
    """Every oauth.accounts[] field takes ${ENV}: a CI job keeps the whole account in its
    secrets. A variable that is not set is the same one-line usage error as for a secret."""
    from mxconform.cli import start_check

    servers = tmp_path / "servers.yaml"
    servers.write_text(
        "defaults: [mas]\n"
        "targets:\n"
        "  - name: mas\n"
        "    base_url: https://matrix.example.org\n"
        "    server_name: example.org\n"
        "    auth: [oauth]\n"
        "    oauth:\n"
        "      issuer: https://auth.example.org/\n"
        "      driver: form\n"
        "      accounts: [{username: '${MXC_TEST_OAUTH_USER}', password: '${MXC_TEST_OAUTH_PW}'}]\n"
    )
    (target,) = load_servers(servers).targets
    monkeypatch.setenv("MXC_TEST_OAUTH_PW", "pw")
    monkeypatch.delenv("MXC_TEST_OAUTH_USER", raising=False)
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.username: environment variable"):
        start_check(target)
    monkeypatch.setenv("MXC_TEST_OAUTH_USER", "alice")
    assert start_check(target) == ["pw"]
    assert target.oauth is not None
    assert target.oauth.accounts[0].resolved_username("here") == "alice"
