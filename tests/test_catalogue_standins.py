"""The checks added for catalogue closure, each turned FAIL (or WARN for a SHOULD) by a stand-in
that breaks its one rule (tests/nonconformant.py), against the real embedded Synapse."""

from __future__ import annotations

import pytest
from nonconformant import BreakingProxy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def proxy(synapse):
    with BreakingProxy(synapse.base_url) as p:
        yield p


# Synapse's own deviations (known-issues/synapse.yaml) FAIL through the plain proxy too.
KNOWN = {
    "uia.password.unknown-3pid[-]",
    "legacy.login.device-is-xsign-key[-]",
}


@pytest.mark.parametrize(
    ("breakage", "select", "failed", "warned"),
    [
        (
            "returned-refresh-token-broken",
            "legacy.refresh.chain",
            {"legacy.refresh.chain[-]"},
            set(),
        ),
        (
            "unrecognized-is-not-found",
            "general.unrecognized",
            {"general.unrecognized.endpoint[-]", "general.unrecognized.method[-]"},
            set(),
        ),
        ("options-needs-token", "general.options", {"general.options.preflight[-]"}, set()),
        ("cors-without-authorization", "general.cors", set(), {"general.cors.headers[-]"}),
        ("device-rename-ignored", "legacy.devices.update", {"legacy.devices.update[-]"}, set()),
        ("unknown-device-found", "legacy.devices.get", {"legacy.devices.get[-]"}, set()),
        (
            "login-refusals-401",
            "legacy.login.unknown-type or legacy.login.token-invalid or legacy.login.unknown-3pid",
            {
                "legacy.login.unknown-type[-]",
                "legacy.login.token-invalid[-]",
                "legacy.login.unknown-3pid[-]",
            },
            set(),
        ),
        ("no-login-fallback", "legacy.login.fallback", {"legacy.login.fallback[-]"}, set()),
        ("wrong-errcode", "legacy.whoami.unknown-token", {"legacy.whoami.unknown-token[-]"}, set()),
        ("txn-not-replayed", "legacy.txn", set(), {"legacy.txn.device-scope[-]"}),
        ("non-auth-error-is-401", "uia.other-errors", {"uia.other-errors[-]"}, set()),
        ("logout-needs-body", "legacy.logout.no-body", {"legacy.logout.no-body[-]"}, set()),
        (
            "token-validity-true",
            "legacy.register.token-validity",
            set(),
            {"legacy.register.token-validity[-]"},
        ),
        (
            "register-without-device",
            "legacy.register.device-generated",
            {"legacy.register.device-generated[-]"},
            set(),
        ),
        (
            "logout-keeps-refresh-token",
            "refresh-token and legacy.logout",
            {
                f"legacy.logout.{c}[{t}]"
                for c in ("refresh-token", "all-refresh-token")
                for t in ("header", "query")
            },
            set(),
        ),
        (
            "locked-is-unknown-token",
            "account.locked",
            {"account.locked.refused[-]"},
            set(),
        ),
        ("locked-login-issues-token", "account.locked", {"account.locked.no-login[-]"}, set()),
        ("locked-logout-refused", "account.locked.logout", {"account.locked.logout[-]"}, set()),
        ("lock-revokes-tokens", "account.locked", set(), {"account.locked.keeps-tokens[-]"}),
        (
            "suspended-is-forbidden",
            "account.suspended",
            {"account.suspended.barred[-]"},
            set(),
        ),
        (
            "deactivated-login-token-accepted",
            "legacy.login.deactivated.token",
            {"legacy.login.deactivated.token[-]"},
            set(),
        ),
        (
            "register-token-wrong-device",
            "tokens.kind.whoami.register",
            # the same observation as whoami-wrong-device: one rule (WHOAMI-200), one level
            {"tokens.kind.whoami.register[header]", "tokens.kind.whoami.register[query]"},
            set(),
        ),
        (
            "logout-keeps-refreshed-token",
            "tokens.kind.logged-out",
            {"tokens.kind.logged-out.refresh[-]"},
            set(),
        ),
        (
            "deactivated-password-login-accepted",
            "legacy.login.deactivated or deactivated-by-admin",
            {"legacy.login.deactivated[-]", "account.deactivated-by-admin.login[-]"},
            set(),
        ),
        (
            "invalid-username-kept",
            "legacy.register.invalid-username",
            {"legacy.register.invalid-username[-]"},
            set(),
        ),
        (
            "login-ignores-device-id",
            "legacy.softlogout",
            {"legacy.softlogout.relogin[-]"},
            set(),
        ),
    ],
)
def test_each_new_check_can_fail(run_harness, proxy, breakage, select, failed, warned):
    proxy.use(breakage)
    run = run_harness(proxy.base_url, "-k", select)
    assert run.with_verdict("FAIL") - KNOWN == failed, run.verdicts()
    assert run.with_verdict("WARN") == warned, run.verdicts()
    assert run.with_verdict("ERROR") == set()
    for check in run.checks:
        if check["verdict"] in ("FAIL", "WARN"):
            assert check["requirements"] and check["evidence"] and check["message"]


def test_a_may_rule_broken_is_info_not_fail(run_harness, proxy):
    """VERSIONS-OPTIONAL-AUTH is a MAY in the catalogue: refusing a token is recorded (INFO)."""
    proxy.use("versions-refuses-token")
    run = run_harness(proxy.base_url, "-k", "legacy.versions")
    assert run.verdicts() == {"legacy.versions.with-token[-]": "INFO"}


def test_new_checks_pass_on_synapse_but_for_known_deviations(run_harness, proxy):
    proxy.use("conformant")
    run = run_harness(
        proxy.base_url, "-k", "general or legacy.devices or check_account or uia.other or txn"
    )
    assert run.with_verdict("FAIL") <= KNOWN
    assert run.with_verdict("WARN") == set() and run.with_verdict("ERROR") == set()
    coverage = run.document["coverage"]
    assert coverage["total"]["uncovered"] == 0 and coverage["uncovered"] == []
