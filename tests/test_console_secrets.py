"""Secrets never reach the console (CI logs are often public), and a run stopped by SIGTERM
cleans up, writes a partial report marked interrupted and leaves `reports/latest` alone."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from leaks import assert_no_secret
from nonconformant import BreakingProxy

pytestmark = pytest.mark.integration
SECRET_VAR = "MXCONFORM_TEST_SHARED_SECRET"  # the variable conftest.py sets


@pytest.fixture(scope="module")
def proxy(synapse):
    with BreakingProxy(synapse.base_url) as p:
        yield p


@pytest.mark.parametrize(
    ("breakage", "select"),
    [
        # every kind of secret (passwords in UIA stages, tokens in queries, refresh tokens,
        # the shared secret) and the known deviations' FAIL lines, in a third of the checks
        (
            "conformant",
            "uia.completed or uia.wrong-password or uia.fallback or unknown-3pid "
            "or legacy.login or tokens.whoami",
        ),
        ("wrong-password-accepted", "legacy.login or uia.wrong-password"),
        ("uia-challenge-missing-token", "delete-devices"),
    ],
)
@pytest.mark.parametrize("tb", [None, "long"])
def test_runs_print_no_secret(run_harness, proxy, capfd, breakage, select, tb):
    proxy.use(breakage)
    extra = ["-k", select] + ([f"--tb={tb}"] if tb else [])
    run = run_harness(proxy.base_url, *extra)
    out, err = capfd.readouterr()
    assert_no_secret(out + err, run.outcome.secrets)
    if tb is None:
        assert "Traceback" not in out + err


def test_a_wrong_shared_secret_is_never_printed(run_harness, synapse, capfd, monkeypatch):
    wrong = "mxconform-wrong-shared-secret-0123456789"
    monkeypatch.setenv(SECRET_VAR, wrong)
    run = run_harness(synapse.base_url, "-k", "tokens.whoami", "--tb=long")
    out, err = capfd.readouterr()
    assert {c["verdict"] for c in run.checks} <= {"ERROR", "SKIP"}
    assert_no_secret(out + err, [wrong, *run.outcome.secrets])


def test_a_static_user_with_a_wrong_password_is_never_printed(
    run_harness, synapse, tmp_path, capfd, monkeypatch
):
    password = "mxconform-wrong-static-password-0123456789"
    monkeypatch.setenv("MXC_STATIC_PASSWORD", password)
    servers = tmp_path / "static.yaml"
    servers.write_text(
        "defaults: [static]\n"
        "targets:\n"
        "  - name: static\n"
        f"    base_url: {synapse.base_url}\n"
        "    server_name: localhost\n"
        "    auth: [legacy]\n"
        "    provisioning:\n"
        "      method: static-users\n"
        "      users: [{user_id: '@nobody-here:localhost', password: '${MXC_STATIC_PASSWORD}'}]\n"
    )
    run = run_harness(synapse.base_url, "-k", "tokens.whoami", "--tb=long", servers=servers)
    out, err = capfd.readouterr()
    assert "ERROR" in {c["verdict"] for c in run.checks}
    assert_no_secret(out + err, [password, *run.outcome.secrets])


def _run_and_terminate(
    servers: Path, reports: Path, env: dict[str, str], select: str = "not expired"
) -> tuple[int, str]:
    """Start `mxconform run`, wait until a few checks are graded, send SIGTERM; exit code
    and output. Counted in checks, not seconds: a fast run could be over before a fixed wait
    ended (a line per check, -v)."""
    command = [sys.executable, "-m", "mxconform.cli", "run", "--servers", str(servers)]
    process = subprocess.Popen(
        [*command, "--report-dir", str(reports), "-k", select, "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    graded = 0
    for line in process.stdout:  # wait until the target is up and a few checks are done
        graded += bool(re.match(r"^\s+(PASS|FAIL|WARN|INFO|SKIP|ERROR|KNOWN)\s", line))
        if graded >= 5 or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    rest, _ = process.communicate(timeout=150)
    assert time.monotonic() - sent < 150
    return process.returncode, rest


def _partial_report(reports: Path) -> dict[str, Any]:
    folders = [p for p in reports.iterdir() if p.name != "latest"]
    assert len(folders) == 1
    document: dict[str, Any] = json.loads((folders[0] / "results.json").read_text())
    assert document["run"]["interrupted"] == "SIGTERM"
    assert 0 < len(document["checks"]) < 200
    assert not (reports / "latest").exists()  # only complete runs become latest
    assert b"INTERRUPTED" in (folders[0] / "index.html").read_bytes()
    return document


def test_sigterm_against_a_remote_target_cleans_up_its_accounts(tmp_path, synapse, servers_file):
    """A CI cancel mid-run against a live server: exit 143, every test account the run made
    deactivated, a partial report marked interrupted, `latest` untouched."""
    env = {**os.environ, SECRET_VAR: synapse.shared_secret}
    code, output = _run_and_terminate(servers_file(synapse.base_url), tmp_path / "r", env)
    assert code == 143, output[-2000:]
    housekeeping = _partial_report(tmp_path / "r")["targets"][0]["housekeeping"]
    assert housekeeping["users_created"]
    left = set(housekeeping["users_created"]) - set(housekeeping["users_deactivated"])
    assert not left, housekeeping["problems"]
    assert synapse.shared_secret not in output


def test_sigterm_leaves_no_embedded_state_behind(tmp_path):
    """The embedded Synapse's state folder (its shared secret, signing key and database of
    test users) is removed even when the run is stopped by SIGTERM."""
    servers = tmp_path / "servers.yaml"
    servers.write_text(
        "defaults: [embedded]\n"
        "targets:\n"
        "  - name: embedded\n"
        "    embedded: synapse-legacy\n"
        "    auth: [legacy]\n"
        "    provisioning: {method: synapse-shared-secret}\n"
    )
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    # the state folder is the point here, not the accounts of a whole run registered ahead
    code, output = _run_and_terminate(servers, tmp_path / "r", env, "tokens or login")
    assert code == 143, output[-2000:]
    _partial_report(tmp_path / "r")
    assert not [p for p in tmp.iterdir() if p.name.startswith("mxconform-")], list(tmp.iterdir())
