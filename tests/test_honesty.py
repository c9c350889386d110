"""Verdicts that mean what they say on servers we did not build for: a target that is not a
homeserver is one ERROR, a setup step that fails is ERROR (never a FAIL of the rule under
test), unknown spec versions are held to the newest we know, and exit codes agree."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from nonconformant import BreakingProxy

from mxconform.cli import EXIT_ERROR, EXIT_FAIL, EXIT_OK, exit_status
from mxconform.cli.summary import summary_json
from mxconform.results import rule_verdicts, summarise


@pytest.fixture(scope="module")
def proxy(synapse) -> Iterator[BreakingProxy]:
    with BreakingProxy(synapse.base_url) as p:
        yield p


@pytest.fixture
def html_site() -> Iterator[str]:
    """A web server that answers every request with a plain HTML page."""

    class Page(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _page(self) -> None:
            body = b"<!doctype html><title>Welcome</title><p>It works!</p>"
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _page

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _only_error(run: Any, reason: str) -> None:
    assert {c["verdict"] for c in run.checks} == {"ERROR"}
    assert all(reason in c["message"] for c in run.checks), run.checks[0]["message"]
    assert run.outcome.exit_code == EXIT_ERROR


@pytest.mark.integration
def test_an_html_page_is_one_error_not_a_graded_run(run_harness, html_site):
    run = run_harness(html_site)
    _only_error(run, "not a Matrix homeserver: HTTP 200 text/html")


@pytest.mark.integration
def test_a_closed_port_is_one_error_in_seconds(run_harness):
    started = time.monotonic()
    run = run_harness("http://127.0.0.1:9")
    assert time.monotonic() - started < 30  # every check, no time-outs
    _only_error(run, "not reachable: cannot connect to http://127.0.0.1:9")


@pytest.mark.integration
def test_garbage_versions_is_not_a_homeserver(run_harness, proxy):
    proxy.use("garbage-versions")
    run = run_harness(proxy.base_url, "-k", "whoami")
    _only_error(run, "is not a JSON object with a `versions` list")


@pytest.mark.integration
def test_unknown_versions_are_held_to_the_newest_known(run_harness, proxy):
    proxy.use("versions-from-the-future")
    run = run_harness(proxy.base_url, "-k", "tokens.query")
    target = run.document["targets"][0]
    assert target["versions_unknown"] == ["v99.0", "not-a-version"]
    assert target["spec_version_evaluated"] == "v1.20"
    assert "does not know" in target["spec_version_source"]
    # held to v1.20: the query token's removal applies, its legacy rule does not
    assert run.with_verdict("FAIL") == set()
    assert {c["check_id"].split(".")[2] for c in run.checks if c["verdict"] != "SKIP"} == {
        "ignored"
    }


@pytest.mark.integration
def test_a_failing_setup_step_is_error_not_a_fail_of_the_rule(run_harness, proxy):
    proxy.use("setup-upload-refused")
    run = run_harness(proxy.base_url, "-k", "cross-signing")
    verdicts = run.verdicts()
    replacing = {k: v for k, v in verdicts.items() if k.startswith("uia.") and "replace" in k}
    assert replacing and set(replacing.values()) == {"ERROR"}, replacing
    for check in run.checks:
        if check["check_id"].startswith("uia.") and "replace" in check["check_id"]:
            assert check["message"].startswith("precondition failed"), check["message"]
    # the first upload needing no UIA is the rule under test there: it FAILs
    assert verdicts["uia.cross-signing.first-upload[-]"] == "FAIL"


@pytest.mark.integration
def test_a_challenge_that_is_not_uia_is_error_for_the_checks_that_start_from_it(run_harness, proxy):
    proxy.use("uia-challenge-missing-token")
    run = run_harness(proxy.base_url, "-k", "delete-devices or fallback or replay or body-change")
    verdicts = run.verdicts()
    assert verdicts["uia.challenge.delete-devices[header]"] == "FAIL"  # the rule under test
    for check in ("uia.wrong-password.delete-devices", "uia.completed.delete-devices"):
        assert verdicts[f"{check}[header]"] == "ERROR", check
    for check in ("uia.fallback-page", "uia.session.replay", "uia.session.body-change"):
        assert verdicts[f"{check}[-]"] == "ERROR", check


@pytest.mark.integration
def test_an_optional_endpoint_the_server_does_not_offer_is_skip_not_fail(run_harness, proxy):
    """3PIDs are optional ("a homeserver may keep contact information"): /account/3pid/add
    answered as unknown (404 M_UNRECOGNIZED) SKIPs its UIA checks with that reason; any other
    answer without a challenge (404 M_NOT_FOUND, 200: uia-skipped-without-auth) still FAILs."""
    proxy.use("3pid-add-unoffered")
    run = run_harness(proxy.base_url, "-k", "add-3pid and header")
    skipped = {c["check_id"]: c["message"] for c in run.checks if c["check_id"].startswith("uia.")}
    assert set(skipped) == {
        f"uia.{k}.add-3pid" for k in ("challenge", "wrong-password", "completed")
    }, skipped
    assert run.with_verdict("SKIP") >= {f"{k}[header]" for k in skipped}
    assert all("does not offer POST" in m and "optional" in m for m in skipped.values())
    proxy.use("3pid-add-not-found")
    run = run_harness(proxy.base_url, "-k", "uia.challenge and add-3pid and header")
    assert run.verdicts()["uia.challenge.add-3pid[header]"] == "FAIL"


@pytest.mark.integration
def test_a_failed_stage_needs_an_errcode_not_synapse_s_errcode(run_harness, proxy):
    """UIA-STAGE-FAILED: "the same 401 with the standard errcode and error"; M_FORBIDDEN is
    the spec's example. Another errcode PASSes; none at all FAILs."""
    selection = "uia.wrong-password.delete-devices and header"
    proxy.use("uia-failed-stage-other-errcode")
    run = run_harness(proxy.base_url, "-k", selection)
    assert run.verdicts()["uia.wrong-password.delete-devices[header]"] == "PASS"
    proxy.use("uia-failed-stage-without-errcode")
    run = run_harness(proxy.base_url, "-k", selection)
    assert run.verdicts()["uia.wrong-password.delete-devices[header]"] == "FAIL"


def _check(verdict: str, *, known: bool = False, req: str = "TOKEN-MISSING") -> dict[str, Any]:
    return {
        "check_id": f"c.{verdict.lower()}",
        "target": "t",
        "transport": None,
        "verdict": verdict,
        "requirements": [req],
        "known_issue": {"reason": "r", "link": "https://x"} if known else None,
    }


def test_exit_codes_say_what_the_run_graded():
    def code(*checks: dict[str, Any], fail_on: str = "fail") -> int:
        return exit_status({"checks": list(checks)}, 0, False, fail_on)[0]

    assert code(_check("PASS"), _check("WARN")) == EXIT_OK
    assert code(_check("PASS"), _check("WARN"), fail_on="warn") == EXIT_FAIL
    assert code(_check("PASS"), _check("FAIL", known=True)) == EXIT_OK
    assert code(_check("PASS"), _check("FAIL")) == EXIT_FAIL
    assert code(_check("PASS"), _check("ERROR")) == EXIT_ERROR
    nothing = exit_status({"checks": [_check("SKIP"), _check("SKIP")]}, 0, False)
    assert nothing == (EXIT_ERROR, "nothing graded (every check was SKIP or ERROR)")


def test_a_known_issue_that_was_not_tried_is_flagged():
    checks = [_check("SKIP", known=True), _check("ERROR", known=True), _check("PASS", known=True)]
    summary = summarise(checks)["t"]
    assert summary["known_not_tried"] == ["c.error", "c.skip"]
    assert summary["known_now_passing"] == ["c.pass"]


def test_a_fail_counts_against_the_rules_it_broke_only():
    """A FAIL's cited rules beyond its basis are observed, not failed; a PASS judges all
    it cites; ERROR and SKIP judge none (their rules stay OBSERVED)."""
    failed = dict(_check("FAIL"), requirements=["API-BAD-JSON", "API-ERR-SHAPE"])
    failed["basis"] = ["API-BAD-JSON"]
    errored = dict(_check("ERROR"), requirements=["WHOAMI-200"], basis=[])
    rules = rule_verdicts([failed, errored], "t")
    assert rules["API-BAD-JSON"] == {"verdict": "FAIL", "known": False, "checks": 1}
    assert rules["API-ERR-SHAPE"]["verdict"] == "OBSERVED"
    assert rules["WHOAMI-200"]["verdict"] == "ERROR"  # no basis: its cited rules, not graded
    passed = dict(_check("PASS"), requirements=["API-ERR-SHAPE"], basis=["API-ERR-SHAPE"])
    assert rule_verdicts([failed, passed], "t")["API-ERR-SHAPE"]["verdict"] == "PASS"
    known = dict(failed, known_issue={"reason": "r", "link": "https://x"})
    assert rule_verdicts([known], "t")["API-BAD-JSON"]["known"] is True


def test_a_partial_selection_never_reads_conformant():
    document = {
        "run": {"selection": {"complete": False, "text": "-k 'login'"}},
        "targets": [{"name": "t"}, {"name": "u", "not_selected": True}],
        "checks": [_check("PASS")],
    }
    document["summary"] = summarise(document["checks"], document["targets"])
    assert document["summary"]["u"]["not_selected"] and document["summary"]["u"]["total"] == 0
    code, reason = exit_status(document, 0, False)
    assert code == EXIT_OK
    data = json.loads(summary_json(document, None, 1.0, code, reason))
    assert data["complete"] is False and data["selection"] == "-k 'login'"
    assert data["targets"]["t"]["conformant_on_must"] is False
    assert "not a conformance verdict" in data["exit_reason"]
    assert "u: not selected" in data["targets"]["u"]["headline"]
    for target in document["targets"]:
        target["not_selected"] = True
    code, reason = exit_status(document, 0, False)
    assert code == EXIT_ERROR and "holds no check that applies to t, u" in reason


def _address_off_loopback() -> str | None:
    """An address of this machine that is not loopback (the route out), if it has one."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, a route is chosen
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.mark.integration
def test_plain_http_is_judged_by_the_scheme_the_run_uses(run_harness, synapse):
    """general.https: plain HTTP off loopback breaks the SHOULD (WARN); on loopback (a test
    setup) the rule is not applicable: never a PASS for plain HTTP."""
    on_loopback = run_harness(synapse.base_url, "-k", "general.https")
    (check,) = on_loopback.checks
    assert check["verdict"] == "SKIP" and check["skip"] == {
        "kind": "not_applicable",
        "why": "feature",
    }
    address = _address_off_loopback()
    if address is None:
        pytest.skip("this machine has no address off loopback to serve plain HTTP on")
    with BreakingProxy(synapse.base_url, host=address) as off_loopback:
        run = run_harness(off_loopback.base_url, "-k", "general.https")
    (check,) = run.checks
    assert check["verdict"] == "WARN", check["message"]
    assert check["findings"][0]["observed"] == off_loopback.base_url
    assert check["basis"] == ["API-HTTPS"]
