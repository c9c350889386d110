"""What a run leaves on a server it does not own: nothing active, and no login spent on
cleanup. Against the session's real Synapse, reached as a remote target (accounts are
deactivated, not discarded), with its database read back afterwards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nonconformant import BreakingProxy

from conftest import SECRET_VAR, remote_servers_file
from mxconform.cli import main, parser, run_suites
from mxconform.legacy.ledger import read_ledger

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
LOGIN = '"POST /_matrix/client/v3/login '


def _logins(log: Path) -> int:
    return log.read_text(errors="replace").count(LOGIN)


def _settled_logins(log: Path) -> int:
    """The count once the server has logged every request it answered (it logs after)."""
    last = -1
    for _ in range(20):
        now = _logins(log)
        if now == last:
            return now
        last = now
        time.sleep(0.1)
    return last


def _left_on_server(db: Path, users: list[str]) -> tuple[list[str], int]:
    """(accounts still active, access tokens still held) among `users`, from the database."""
    marks = ",".join("?" * len(users))
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        active = conn.execute(
            f"SELECT name FROM users WHERE deactivated = 0 AND name IN ({marks})", users
        ).fetchall()
        tokens = conn.execute(
            f"SELECT COUNT(*) FROM access_tokens WHERE user_id IN ({marks})", users
        ).fetchone()
    return [row[0] for row in active], int(tokens[0])


def test_cleanup_spends_no_login_and_leaves_nothing_active(run_harness, synapse, _own_state_dir):
    before = _settled_logins(synapse.log_path)
    run = run_harness(synapse.base_url, "-k", "uia.completed or account.locked or legacy.logout")
    during = _settled_logins(synapse.log_path) - before
    judged = sum(
        1
        for c in run.checks
        for e in c["evidence"]
        if e["method"] == "POST" and e["url"].split("?")[0].endswith("/v3/login")
    )
    assert during == judged, f"{during - judged} logins outside the checks (cleanup)"
    assert run.document["targets"][0]["operations"].get("login", 0) == during
    hk = run.document["targets"][0]["housekeeping"]
    assert hk["users_created"] and hk["users_left_active"] == [] and hk["problems"] == []
    assert "ledgers" not in hk
    assert not list(_own_state_dir.glob("ledgers/*.jsonl")), "the ledger outlived a clean run"
    active, tokens = _left_on_server(synapse.workdir / "homeserver.db", hk["users_created"])
    assert active == [] and tokens == 0


def test_after_sigkill_the_ledger_lets_cleanup_finish(
    tmp_path, monkeypatch, synapse, _own_state_dir
):
    """A run killed outright cleans nothing; its ledger was written before each account was
    asked for, and `mxconform cleanup` deactivates every one of them."""
    servers = remote_servers_file(tmp_path, synapse.base_url)
    env = {**os.environ, SECRET_VAR: synapse.shared_secret}
    command = [sys.executable, "-m", "mxconform.cli", "run", "--servers", str(servers)]
    command += ["--jobs", "1", "-q", "--report-dir", str(tmp_path / "reports"), "-k", "uia"]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledgers = _own_state_dir / "ledgers"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            found = list(ledgers.glob("*.jsonl"))
            if found and len(read_ledger(found[0]).passwords) >= 6:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the run ended before it could be killed"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
    (ledger,) = ledgers.glob("*.jsonl")
    users = list(read_ledger(ledger).passwords)
    active, _ = _left_on_server(synapse.workdir / "homeserver.db", users)
    assert active, "nothing was left active: the kill came too late to test cleanup"

    monkeypatch.setenv(SECRET_VAR, synapse.shared_secret)
    assert main(["cleanup", str(ledger)]) == 0
    assert not ledger.exists()
    active, tokens = _left_on_server(synapse.workdir / "homeserver.db", users)
    assert active == [] and tokens == 0


def test_an_admin_api_the_proxy_keeps_private_is_one_reason_not_an_error_per_check(
    run_harness, synapse
):
    with BreakingProxy(synapse.base_url, "admin-api-private") as proxy:
        run = run_harness(proxy.base_url, "-k", "legacy.login.password or uia.completed")
    assert {c["verdict"] for c in run.checks} == {"ERROR"}
    for check in run.checks:
        assert "set the target's admin_url" in check["message"], check["message"]
    assert sum(p.startswith("/_synapse/admin") for p in proxy.paths) == 1


def test_checks_that_need_no_test_user_still_run_without_provisioning(run_harness, synapse):
    with BreakingProxy(synapse.base_url, "admin-api-private") as proxy:
        run = run_harness(proxy.base_url, "-k", "general.unrecognized")
    assert run.checks and {c["verdict"] for c in run.checks} <= {"PASS", "INFO"}


def test_admin_url_reaches_the_admin_api_the_proxy_keeps_private(tmp_path, run_harness, synapse):
    with BreakingProxy(synapse.base_url, "admin-api-private") as proxy:
        servers = remote_servers_file(tmp_path, proxy.base_url)
        text = servers.read_text().replace(
            "    server_name:", f"    admin_url: {synapse.base_url}\n    server_name:"
        )
        servers.write_text(text)
        run = run_harness(proxy.base_url, "-k", "legacy.login.password", servers=servers)
    verdicts = set(run.verdicts().values())
    assert verdicts == {"PASS"}, run.verdicts()
    assert not [p for p in proxy.paths if p.startswith("/_synapse/admin")]
    hk = run.document["targets"][0]["housekeeping"]
    assert hk["users_created"] and hk["users_left_active"] == []


def test_registration_off_is_skip_on_every_registration_check(run_harness, synapse):
    with BreakingProxy(synapse.base_url, "registration-off") as proxy:
        run = run_harness(proxy.base_url, "-k", "legacy.register")
    verdicts = {c["check_id"]: (c["verdict"], c["message"]) for c in run.checks}
    skipped = [k for k, (v, m) in verdicts.items() if v == "SKIP" and "turned off" in m]
    assert {"legacy.register.available", "legacy.register.challenge"} <= set(skipped)
    assert len(skipped) >= 6
    # (the token-validity endpoint's 403 M_FORBIDDEN for "registration not permitted" is
    # the answer its spec gives: that check is graded, and passes)
    graded = {k: v for k, (v, _) in verdicts.items() if k not in skipped}
    assert set(graded.values()) <= {"PASS"}, graded


def test_a_proxy_s_own_error_page_is_never_judged(run_harness, synapse):
    """nginx's HTML 400 for two Authorization headers is ERROR naming the proxy; the same
    check on the homeserver itself is graded (INFO), and nothing FAILs."""
    with BreakingProxy(synapse.base_url, "proxy-refuses-two-authorization") as proxy:
        run = run_harness(proxy.base_url, "-k", "tokens.unspecified")
    by_case = {c["check_id"]: c for c in run.checks}
    two = by_case["tokens.unspecified.two-authorization-headers"]
    assert two["verdict"] == "ERROR"
    assert "answered by a proxy, not the homeserver" in two["message"]
    assert "nginx/1.22.1" in two["message"]
    assert "not from the homeserver" in (two["evidence"][0].get("note") or "")
    others = [c["verdict"] for k, c in by_case.items() if k != two["check_id"]]
    assert others and set(others) <= {"INFO", "PASS"}


def test_a_homeserver_s_own_non_json_error_is_still_judged(run_harness, synapse):
    """The guard is for proxies only: the homeserver answering errors in plain text (its
    own Server header, a body that does not sign itself) still FAILs the error-shape rule."""
    with BreakingProxy(synapse.base_url, "plain-text-errors") as proxy:
        run = run_harness(proxy.base_url, "-k", "tokens.error-shape")
    assert {c["verdict"] for c in run.checks} == {"FAIL"}


def test_synapse_stock_behind_nginx(tmp_path, _own_state_dir):
    """The stock target end to end: registration off is SKIP, nginx's own error page is
    ERROR, the admin API is reached on Synapse's listener, cleanup spends no login, nothing
    is left active, and nothing is rate-limited into an ERROR (login rates x100, bursts as
    shipped)."""
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed (.ci/run installs it)")
    servers = tmp_path / "servers.yaml"
    servers.write_text(
        "defaults: [stock]\n"
        "targets:\n"
        "  - name: stock\n"
        "    embedded: synapse-stock\n"
        "    server_name: localhost\n"
        "    auth: [legacy]\n"
        "    provisioning: {method: synapse-shared-secret}\n"
        "    cleanup: deactivate\n"
        "    synapse_rate_scale: 100\n"
        f"    known_issues: {ROOT / 'known-issues' / 'synapse.yaml'}\n"
    )
    selection = "legacy.register or tokens.unspecified or legacy.login.password"
    args = ["run", "--servers", str(servers), "--report-dir", str(tmp_path / "r")]
    outcome = run_suites(parser().parse_args([*args, "--jobs", "1", "-k", selection]))
    assert outcome.report_dir is not None
    document = json.loads((outcome.report_dir / "results.json").read_text())
    target, checks = document["targets"][0], document["checks"]
    verdicts = {f"{c['check_id']}[{c['transport'] or '-'}]": c for c in checks}
    assert target["server_header"].startswith("nginx/")
    assert target["server_software"].startswith("Synapse ")
    two = verdicts["tokens.unspecified.two-authorization-headers[-]"]
    assert two["verdict"] == "ERROR" and "not the homeserver" in two["message"]
    assert verdicts["legacy.register.available[-]"]["verdict"] == "SKIP"
    assert not [c for c in checks if c["verdict"] == "FAIL" and not c.get("known_issue")]
    assert not [c for c in checks if "rate-limit" in c["message"]]
    hk = target["housekeeping"]
    assert hk["users_created"] and hk["users_left_active"] == [] and hk["problems"] == []
    assert not list(_own_state_dir.glob("ledgers/*.jsonl"))
    access = (outcome.report_dir / "logs" / "stock" / "nginx-access.log").read_text()
    judged = sum(
        1
        for c in checks
        for e in c["evidence"]
        if e["method"] == "POST" and e["url"].split("?")[0].endswith("/v3/login")
    )
    assert access.count('"POST /_matrix/client/v3/login') == judged
    assert "/_synapse/admin" not in access  # never through the public URL


def test_max_wait_sets_every_target_s_rate_limit_budget(run_harness, synapse):
    run = run_harness(synapse.base_url, "-k", "tokens.missing", "--max-wait", "7200")
    assert run.document["targets"][0]["limits"]["rate_limit_budget_s"] == 7200.0
