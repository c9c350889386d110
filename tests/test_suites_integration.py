"""The token suite against a real Synapse: PASS where it conforms, FAIL where a stand-in
breaks one rule. These start a real embedded Synapse once and run the harness in-process."""

from __future__ import annotations

import pytest
from nonconformant import BreakingProxy

pytestmark = pytest.mark.integration

PROBES = ["whoami", "devices", "account-data", "profile", "sync"]

TOKEN_KINDS = ("login", "login-refreshable", "register", "refresh")  # tokens/check_kinds.py


def keys(
    check: str, transports: tuple[str, ...] = ("header", "query"), probes: list[str] | None = PROBES
) -> set[str]:
    names = [f"{check}.{p}" for p in probes] if probes else [check]
    return {f"{n}[{t}]" for n in names for t in transports}


@pytest.fixture(scope="module")
def proxy(synapse):
    with BreakingProxy(synapse.base_url) as p:
        yield p


def test_synapse_conforms_on_both_transports(run_harness, synapse):
    run = run_harness(synapse.base_url, "-k", "tokens or discovery")
    verdicts = run.verdicts()
    assert run.outcome.exit_code == 0
    assert set(verdicts.values()) <= {"PASS", "INFO", "SKIP"}
    graded = [k for k, v in verdicts.items() if v in ("PASS", "INFO")]
    assert len(graded) >= 20
    for transport in ("header", "query"):
        for probe in PROBES:
            assert verdicts[f"tokens.valid.accepted.{probe}[{transport}]"] == "PASS"
            assert verdicts[f"tokens.unknown.rejected.{probe}[{transport}]"] == "PASS"
            assert verdicts[f"tokens.logged-out.rejected.{probe}[{transport}]"] == "PASS"
        assert verdicts[f"tokens.whoami.identity[{transport}]"] == "PASS"
    assert verdicts["tokens.missing.rejected.whoami[-]"] == "PASS"
    assert verdicts["tokens.unspecified.lowercase-bearer[-]"] == "INFO"
    # The v1.20 rule is version-gated: Synapse 1.163 advertises up to v1.15.
    assert verdicts["tokens.query.ignored.whoami[query]"] == "SKIP"
    skipped = next(c for c in run.checks if c["check_id"] == "tokens.query.ignored.whoami")
    assert "applies from v1.20" in skipped["message"]
    # Housekeeping: the users the run made were cleaned up.
    hk = run.document["targets"][0]["housekeeping"]
    assert hk["users_created"] and set(hk["users_created"]) == set(hk["users_deactivated"])


@pytest.mark.parametrize(
    ("breakage", "expected_fail"),
    [
        (
            "ignore-query-token",
            keys("tokens.valid.accepted", ("query",))
            | keys("tokens.unknown.rejected", ("query",))
            | keys("tokens.logged-out.rejected", ("query",))
            | {"tokens.whoami.identity[query]"}
            | {f"tokens.kind.whoami.{k}[query]" for k in TOKEN_KINDS},
        ),
        (
            "accept-without-token",
            keys("tokens.missing.rejected", ("-",)) | {"tokens.error-shape.missing[-]"},
        ),
        (
            "wrong-errcode",
            keys("tokens.unknown.rejected")
            | keys("tokens.logged-out.rejected")
            | {f"tokens.kind.logged-out.{k}[-]" for k in TOKEN_KINDS},
        ),
        (
            "plain-text-errors",
            {
                "tokens.error-shape.missing[-]",
                "tokens.error-shape.unknown[header]",
                "tokens.error-shape.unknown[query]",
            }
            | {
                f"tokens.unspecified.{c}[-]"
                for c in (
                    "header-and-query-same",
                    "header-valid-query-unknown",
                    "lowercase-bearer",
                    "two-authorization-headers",
                    "other-scheme",
                    "bearer-without-token",
                )
            },
        ),
        (
            "whoami-wrong-device",  # every token's whoami: the kinds' checks too (WHOAMI-200)
            {"tokens.whoami.identity[header]", "tokens.whoami.identity[query]"}
            | {f"tokens.kind.whoami.{k}[{t}]" for k in TOKEN_KINDS for t in ("header", "query")},
        ),
    ],
)
def test_each_broken_rule_turns_its_checks_fail(run_harness, proxy, breakage, expected_fail):
    proxy.use(breakage)
    run = run_harness(proxy.base_url, "-k", "tokens.")  # the token suite's check ids
    assert run.with_verdict("FAIL") == expected_fail
    # A server answering without a token breaks the WWW-Authenticate check's precondition
    # (a 401 to look at): ERROR, never a FAIL of a rule it did not try.
    not_tried = {"tokens.www-authenticate[-]"} if breakage == "accept-without-token" else set()
    assert run.with_verdict("ERROR") == not_tried
    assert run.outcome.exit_code == 1
    failed = [c for c in run.checks if c["verdict"] == "FAIL"]
    assert all(c["message"] and c["requirements"] and c["evidence"] for c in failed)


def test_a_v1_20_server_is_held_to_the_removal_of_query_tokens(run_harness, proxy):
    """Advertising v1.20 gates the query transport off and the removal rule on; Synapse
    still honours query tokens, which the removal rule (a SHOULD) reports as WARN."""
    proxy.use("advertise-v1.20")
    run = run_harness(proxy.base_url, "-k", "tokens")
    verdicts = run.verdicts()
    assert verdicts["tokens.valid.accepted.whoami[query]"] == "SKIP"
    assert verdicts["tokens.valid.accepted.whoami[header]"] == "PASS"
    assert {k for k, v in verdicts.items() if k.startswith("tokens.query.ignored")} == keys(
        "tokens.query.ignored", ("query",)
    )
    assert run.with_verdict("WARN") == keys("tokens.query.ignored", ("query",))
    assert run.outcome.exit_code == 0


def test_spec_version_override_applies_to_every_target(run_harness, synapse):
    run = run_harness(synapse.base_url, "--spec-version", "v1.20", "-k", "query")
    assert run.document["targets"][0]["spec_version_evaluated"] == "v1.20"
    assert run.with_verdict("WARN") == keys("tokens.query.ignored", ("query",))


def test_unreachable_target_is_error_not_fail(run_harness):
    run = run_harness("http://127.0.0.1:9", "-k", "whoami")
    assert run.with_verdict("FAIL") == set()
    assert run.with_verdict("ERROR") and run.outcome.exit_code == 2


# Synapse 1.163 deviates from the spec here; the check is right to FAIL (see known-issues/).
SYNAPSE_DEVIATIONS = {
    "legacy.refresh.consumed[-]",
    "uia.fallback-page[-]",
    "uia.password.unknown-3pid[-]",
    "legacy.login.device-is-xsign-key[-]",
}
QUICK_LEGACY = "legacy and not expired"
PASSWORD_UIA_OPS = [
    "get-login-token",
    "change-password",
    "deactivate",
    "add-3pid",
    "delete-device",
    "delete-devices",
    "cross-signing-replace",
]


def test_synapse_legacy_api_conforms_but_for_known_deviations(run_harness, synapse):
    run = run_harness(synapse.base_url, "-k", "legacy or uia")
    assert run.with_verdict("FAIL") == SYNAPSE_DEVIATIONS
    assert run.with_verdict("ERROR") == set()
    verdicts = run.verdicts()
    for transport in ("header", "query"):
        for check in (
            "legacy.refresh.new-pair",
            "legacy.token.expired",
            "legacy.logout.device-gone",
            "legacy.logout.all",
        ):
            assert verdicts[f"{check}[{transport}]"] == "PASS"
        for op in PASSWORD_UIA_OPS:
            assert verdicts[f"uia.challenge.{op}[{transport}]"] == "PASS"
            assert verdicts[f"uia.wrong-password.{op}[{transport}]"] == "PASS"
            expected = "SKIP" if op == "add-3pid" else "PASS"
            assert verdicts[f"uia.completed.{op}[{transport}]"] == expected
    assert verdicts["uia.challenge.register[-]"] == "PASS"
    hk = run.document["targets"][0]["housekeeping"]
    assert hk["problems"] == [] and set(hk["users_created"]) == set(hk["users_deactivated"])
    # The checks that wait for a token to expire ran after all the others (their tokens had
    # expired by then), yet the results keep the order the checks were selected in.
    last_sent = {
        c["check_id"]: max((e["started_at"] for e in c["evidence"]), default="") for c in run.checks
    }
    waiting = {"legacy.token.expired", "legacy.softlogout.relogin"}
    others = max(t for k, t in last_sent.items() if k not in waiting)
    assert all(last_sent[k] >= others for k in waiting)
    order = [c["check_id"] for c in run.checks]
    assert order.index("legacy.token.expired") < order.index("legacy.logout.device-gone")


@pytest.mark.parametrize(
    ("breakage", "select", "expected_fail", "expected_warn"),
    [
        (
            "wrong-password-accepted",
            QUICK_LEGACY,
            {
                "legacy.login.wrong-password[-]",
                "legacy.login.unknown-user[-]",
                "legacy.login.token-invalid[-]",  # the stand-in turns every 403 into 200
                "legacy.login.long-password[-]",
                "legacy.login.unknown-3pid[-]",
                "legacy.login.deactivated.token[-]",
                "legacy.login.deactivated[-]",
                "account.deactivated-by-admin.login[-]",
            },
            set(),
        ),
        (
            "long-password-change-500",
            "long-password-change",
            {"legacy.account.long-password-change[-]"},
            set(),
        ),
        (
            "long-password-change-ignored",
            "long-password-change",
            {"legacy.account.long-password-change[-]"},
            set(),
        ),
        (
            "refresh-never-refused",
            "legacy.refresh",
            {"legacy.refresh.grace[-]", "legacy.refresh.unknown[-]"},
            set(),
        ),
        (
            "logout-does-nothing",
            "legacy.logout or tokens.logged-out",
            keys("legacy.logout.device-gone", probes=None)
            | keys("legacy.logout.refresh-token", probes=None)
            | {"legacy.logout.no-body[-]"}
            | keys("tokens.logged-out.rejected"),
            set(),
        ),
        (
            "uia-flows-without-stages",
            "legacy.register.challenge",
            {"legacy.register.challenge[-]"},
            set(),
        ),
        ("uia-before-username-check", "legacy.register", {"legacy.register.in-use[-]"}, set()),
        (
            "authenticated-versions-without-versions",
            "legacy.versions",
            {"legacy.versions.with-token[-]"},
            set(),
        ),
        (
            "guest-refusal-not-a-matrix-error",
            "legacy.register.kind-guest",
            {"legacy.register.kind-guest[-]"},
            set(),
        ),
        (
            "expired-is-hard-logout",
            "legacy.token.expired",
            set(),
            keys("legacy.token.expired", probes=None),
        ),
        (
            "uia-wrong-password-accepted",
            "uia.wrong-password",
            keys("uia.wrong-password", probes=PASSWORD_UIA_OPS),
            set(),
        ),
        (
            "cross-signing-always-uia",  # (the re-upload check is then ERROR: test_honesty)
            "first-upload",
            {"uia.cross-signing.first-upload[-]"},
            set(),
        ),
        (  # the re-upload check reaches its first upload through UIA, and PASSes
            "first-cross-signing-upload-needs-uia",
            "cross-signing",
            {"uia.cross-signing.first-upload[-]"},
            set(),
        ),
        (
            "identical-reupload-needs-uia",
            "identical-reupload",
            {"uia.cross-signing.identical-reupload[-]"},
            set(),
        ),
        (
            "delete-devices-does-nothing",
            "uia.completed.delete-devices",
            keys("uia.completed.delete-devices", probes=None),
            set(),
        ),
    ],
)
def test_each_broken_legacy_rule_turns_its_checks_fail(
    run_harness, proxy, breakage, select, expected_fail, expected_warn
):
    proxy.use(breakage)
    run = run_harness(proxy.base_url, "-k", select)
    deviations = {k for k in SYNAPSE_DEVIATIONS if k in run.verdicts()}
    assert run.with_verdict("FAIL") - deviations == expected_fail
    assert run.with_verdict("WARN") == expected_warn
    assert run.with_verdict("ERROR") == set()
    for check in run.checks:
        if check["verdict"] in ("FAIL", "WARN") and check["check_id"] + "[-]" not in deviations:
            assert check["requirements"] and check["evidence"]


def test_a_guest_refusal_is_judged_on_its_status_and_error_shape_not_the_example_code(
    run_harness, proxy
):
    """Synapse's 403 M_UNKNOWN (plain, through the proxy) and the example's M_FORBIDDEN both
    PASS; a 403 that is no Matrix error FAILs (test_each_broken_legacy_rule_...)."""
    run = run_harness(proxy.base_url, "-k", "legacy.register.kind-guest")
    assert run.verdicts() == {"legacy.register.kind-guest[-]": "PASS"}
    proxy.use("guest-refusal-forbidden")
    run = run_harness(proxy.base_url, "-k", "legacy.register.kind-guest")
    assert run.verdicts() == {"legacy.register.kind-guest[-]": "PASS"}


def test_static_users_are_never_changed_or_destroyed(tmp_path, monkeypatch, synapse, run_harness):
    """A target with given accounts: destructive checks SKIP with the reason, the accounts
    still log in with their passwords afterwards, and every device the run made is gone."""
    import httpx

    from mxconform.legacy.registration import shared_secret_mac

    users = []
    for n in range(2):
        name, password = f"given-{tmp_path.name[-12:]}-{n}".lower(), f"pw-{n}-Abcdef123"
        nonce = httpx.get(f"{synapse.base_url}/_synapse/admin/v1/register").json()["nonce"]
        mac = shared_secret_mac(synapse.shared_secret, nonce, name, password, False)
        resp = httpx.post(
            f"{synapse.base_url}/_synapse/admin/v1/register",
            json={
                "nonce": nonce,
                "username": name,
                "password": password,
                "admin": False,
                "mac": mac,
            },
        )
        assert resp.status_code == 200
        users.append((resp.json()["user_id"], password, resp.json()["access_token"]))
        monkeypatch.setenv(f"MXC_GIVEN_PW_{n}", password)
    servers = tmp_path / "static.yaml"
    servers.write_text(
        "defaults: [given]\ntargets:\n  - name: given\n"
        f"    base_url: {synapse.base_url}\n    server_name: localhost\n    auth: [legacy]\n"
        "    max_requests_per_second: 1000\n"
        "    provisioning:\n      method: static-users\n      users:\n"
        + "".join(
            f"        - {{user_id: '{u}', password: '${{MXC_GIVEN_PW_{n}}}'}}\n"
            for n, (u, _, _) in enumerate(users)
        )
    )
    # get_token is limited to one mint a minute per account: honoured, but slow
    run = run_harness("", "-k", "not expired and not get-login-token", servers=servers)
    by_id = {c["check_id"] + f"[{c['transport'] or '-'}]": c for c in run.checks}
    for destructive in (
        "legacy.logout.all[header]",
        "uia.completed.deactivate[header]",
        "uia.completed.change-password[query]",
        "uia.cross-signing.first-upload[-]",
        "uia.challenge.cross-signing-replace[header]",
    ):
        assert by_id[destructive]["verdict"] == "SKIP"
        assert "static-users" in by_id[destructive]["message"]
    assert by_id["uia.completed.delete-devices[header]"]["verdict"] == "PASS"
    hk = run.document["targets"][0]["housekeeping"]
    # Only checks that register accounts of their own create any here, never a given one;
    # the harness cleans those up.
    given = {user_id for user_id, _, _ in users}
    assert not given & set(hk["users_created"])
    assert sorted(hk["users_created"]) == sorted(hk["users_deactivated"])
    for user_id, password, token in users:
        login = httpx.post(
            f"{synapse.base_url}/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "password": password,
                "identifier": {"type": "m.id.user", "user": user_id},
            },
        )
        assert login.status_code == 200, "the given account must still log in as before"
        devices = httpx.get(
            f"{synapse.base_url}/_matrix/client/v3/devices",
            headers={"Authorization": f"Bearer {token}"},
        ).json()["devices"]
        assert len(devices) == 2, "only the account's own device and this login remain"


BOTH = ("header", "query")


@pytest.mark.parametrize(
    ("breakage", "select", "must_fail"),
    [
        (
            "ignore-bearer-header",
            "tokens.valid or tokens.whoami",
            keys("tokens.valid.accepted", ("header",)) | {"tokens.whoami.identity[header]"},
        ),
        (
            "no-legacy-login",
            "discovery.legacy or legacy.login.flows",
            {"discovery.legacy.offered[-]", "legacy.login.flows[-]"},
        ),
        (
            "login-answers-without-device",
            "legacy.login.password",
            {"legacy.login.password.identifier[-]", "legacy.login.password.user-field[-]"},
        ),
        ("login-ignores-device-id", "legacy.login.device-reuse", {"legacy.login.device-reuse[-]"}),
        ("drop-display-name", "legacy.login.display-name", {"legacy.login.display-name[-]"}),
        ("every-name-available", "legacy.register.available", {"legacy.register.available[-]"}),
        (
            "invalid-username-wrong-errcode",
            "legacy.register.invalid-username",
            {"legacy.register.invalid-username[-]"},
        ),
        (
            "refresh-without-access-token",
            "legacy.refresh.new-pair",
            keys("legacy.refresh.new-pair", BOTH, probes=None),
        ),
        (
            "logout-all-does-nothing",
            "legacy.logout.all",
            keys("legacy.logout.all", BOTH, probes=None)
            | keys("legacy.logout.all-refresh-token", BOTH, probes=None),
        ),
        (
            "uia-skipped-without-auth",
            "uia.challenge",
            keys("uia.challenge", BOTH, probes=PASSWORD_UIA_OPS),
        ),
        (
            "uia-completed-does-nothing",
            "uia.completed",
            keys(
                "uia.completed",
                BOTH,
                probes=[op for op in PASSWORD_UIA_OPS if op not in ("add-3pid", "delete-devices")],
            )
            - keys("uia.completed.get-login-token", BOTH, probes=None),
        ),
    ],
)
def test_every_check_group_can_fail(run_harness, proxy, breakage, select, must_fail):
    """One broken rule per check the other tests do not break: each turns FAIL."""
    proxy.use(breakage)
    run = run_harness(proxy.base_url, "-k", select)
    assert must_fail <= run.with_verdict("FAIL"), run.verdicts()
    for check in run.checks:
        if check["verdict"] == "FAIL" and f"{check['check_id']}[{check['transport'] or '-'}]" in (
            must_fail
        ):
            assert check["requirements"] and check["evidence"] and check["message"]


@pytest.mark.parametrize(
    ("breakage", "select", "warned"),
    [
        # The spec asks for 404 M_UNRECOGNIZED with a SHOULD.
        ("serves-auth-metadata", "discovery.oauth.absent", "discovery.oauth.absent[-]"),
        # "an access_token and device_id should not be returned": a lower-case should.
        (
            "inhibit-login-ignored",
            "legacy.register.inhibit-login",
            "legacy.register.inhibit-login[-]",
        ),
    ],
)
def test_broken_shoulds_warn(run_harness, proxy, breakage, select, warned):
    proxy.use(breakage)
    run = run_harness(proxy.base_url, "-k", select)
    assert run.verdicts() == {warned: "WARN"}


def test_declared_apis_decide_fail_and_skip(servers_file, run_harness, synapse):
    """Declaring the OAuth API on a legacy-only server is a FAIL; an API not declared makes its
    checks SKIP as not offered (and a legacy API served anyway gets the SHOULD warning)."""
    both = servers_file(synapse.base_url, auth="[legacy, oauth]")
    run = run_harness("", "-k", "discovery", servers=both)
    assert run.verdicts()["discovery.oauth.offered[-]"] == "FAIL"
    assert run.outcome.exit_code == 1
    oauth_only = servers_file(synapse.base_url, auth="[oauth]")
    run = run_harness("", "-k", "discovery or tokens.valid", servers=oauth_only)
    verdicts = run.verdicts()
    assert verdicts["discovery.legacy.absent[-]"] == "WARN"
    skipped = [c for c in run.checks if c["check_id"].startswith("tokens.valid")]
    assert skipped and all(c["verdict"] == "SKIP" for c in skipped)
    assert all("legacy API is not offered" in c["message"] for c in skipped)


def test_baseline_comparison_turns_a_new_fail_into_exit_1(run_harness, proxy, synapse, capsys):
    proxy.use("conformant")
    before = run_harness(proxy.base_url, "-k", "tokens.missing")
    assert before.outcome.exit_code == 0
    baseline = before.outcome.report_dir / "results.json"
    proxy.use("accept-without-token")
    after = run_harness(proxy.base_url, "-k", "tokens.missing", "--baseline", str(baseline))
    assert after.outcome.exit_code == 1
    out = capsys.readouterr().out
    assert "regressions (new FAIL): 5" in out and "tokens.missing.rejected.whoami" in out


def test_repeated_runs_mark_checks_whose_verdict_changes_flaky(run_harness, proxy):
    proxy.use("wrong-errcode-twice")  # the first run's two refusals are wrong, then fine
    run = run_harness(proxy.base_url, "-k", "tokens.unknown.rejected.whoami", "--repeat", "2")
    flaky = {f"{c['check_id']}[{c['transport']}]": c for c in run.checks if c.get("flaky")}
    assert set(flaky) == keys("tokens.unknown.rejected", probes=["whoami"])
    for check in flaky.values():
        assert check["verdict"] == "FAIL" and check["flaky"]["verdicts"] == ["FAIL", "PASS"]
        assert all(r["evidence"] for r in check["flaky"]["runs"])
    assert run.document["run"]["repeats"] == 2
    assert run.outcome.report_dir.name.endswith("-repeat2")
    assert "FLAKY" in (run.outcome.report_dir / "index.html").read_text()
