"""JUnit XML as a CI dashboard reads it: parsed with junitparser, not ElementTree."""

from __future__ import annotations

import json
from typing import Any

from junitparser import Attr, Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from mxconform.http.redact import SecretRegistry
from mxconform.report import render_all
from mxconform.report.junit import KNOWN_ISSUE_TYPE, render_junit
from mxconform.results import SCHEMA_VERSION, CheckRecord, build_document, write_document
from mxconform.spec.verdicts import Verdict


class Case(TestCase):
    file = Attr()  # junitparser's own way to read an attribute it does not know


class Suite(TestSuite):
    testcase = Case


class Xml(JUnitXml):
    testsuite = Suite


SPEC = "https://spec.matrix.org/v1.15/client-server-api/#refresh"


def check(check_id: str, verdict: str, transport: str | None = "header", **extra: Any) -> dict:
    return {
        "check_id": check_id,
        "title": check_id,
        "requirements": ["REFRESH-NEW"],
        "basis": ["REFRESH-NEW"] if verdict not in ("SKIP", "ERROR") else [],
        "target": "hs",
        "auth_api": "legacy",
        "transport": transport,
        "verdict": verdict,
        "message": f"{check_id} said so",
        "expected": None,
        "observed": None,
        "findings": [],
        "observations": [],
        "duration_s": 0.5,
        "evidence": [],
        "nodeid": f"suites/legacy/check_refresh.py::check_{check_id}[hs-{transport}]",
        "known_issue": None,
        **extra,
    }


def document(*checks: dict, selection: dict | None = None, targets: list | None = None) -> dict:
    run: dict[str, Any] = {"started_at": "2026-12-08T00:00:00+00:00", "command": "c"}
    if selection is not None:
        run["selection"] = selection
    rule = {"level": "MUST", "statement": "s", "url": "https://spec.matrix.org/latest/#refresh"}
    return {
        "schema_version": SCHEMA_VERSION,
        "run": run,
        "targets": targets or [{"name": "hs", "auth": ["legacy"]}],
        "requirements": {
            "REFRESH-NEW": {**rule, "area": "refresh", "url_by_target": {"hs": SPEC}},
            "TOKEN-MISSING": {**rule, "area": "tokens", "url": "https://spec.matrix.org/t"},
        },
        "checks": list(checks),
    }


def parse(document: dict, only_target: str | None = None) -> Xml:
    return Xml.fromstring(render_junit(document, only_target).encode())


def cases(xml: Xml) -> dict[str, Case]:
    return {case.name: case for suite in xml for case in suite}


def props(suite: TestSuite) -> dict[str, str]:
    return {p.name: p.value for p in suite.properties()}


def agrees(xml: Xml) -> None:
    """The counts on testsuites and each testsuite are those of the cases listed."""
    groups = [(xml, [case for suite in xml for case in suite]), *((s, list(s)) for s in xml)]
    for element, listed in groups:
        results = [type(r) for case in listed for r in case.result]
        assert element.tests == len(listed)
        assert element.failures == results.count(Failure)
        assert element.errors == results.count(Error)
        assert element.skipped == results.count(Skipped)


def test_cases_are_classed_by_target_and_area_and_named_by_check_and_transport():
    xml = parse(
        document(
            check("legacy.refresh.new-pair", "PASS"),
            check("tokens.missing", "PASS", transport=None, requirements=["TOKEN-MISSING"]),
            check("odd", "PASS", requirements=["NOT-IN-THE-CATALOGUE"]),
        )
    )
    by_name = cases(xml)
    assert set(by_name) == {"legacy.refresh.new-pair[header]", "tokens.missing", "odd[header]"}
    assert by_name["legacy.refresh.new-pair[header]"].classname == "hs.refresh"
    assert by_name["tokens.missing"].classname == "hs.tokens"
    assert by_name["odd[header]"].classname == "hs.other"
    assert by_name["tokens.missing"].file == "suites/legacy/check_refresh.py"
    assert all(case.is_passed for case in by_name.values())


def test_a_failure_says_what_was_expected_observed_which_rule_and_where_in_the_report():
    failing = check(
        "legacy.refresh.new-pair",
        "FAIL",
        message="no new refresh token\nthe second line",
        expected="a new refresh_token",
        observed={"status": 200, "body": {"access_token": "<redacted>"}},
        requirements=["TOKEN-MISSING", "REFRESH-NEW"],
        basis=["REFRESH-NEW"],
    )
    [case] = cases(parse(document(failing))).values()
    assert case.classname == "hs.tokens"  # the area of its first requirement
    [failure] = case.result
    assert isinstance(failure, Failure) and failure.message == "no new refresh token"
    body = failure.text
    assert "no new refresh token\nthe second line" in body
    assert "expected: a new refresh_token" in body
    assert '"status": 200' in body and '\n    "access_token"' in body  # JSON, pretty
    assert f"rule REFRESH-NEW (MUST): {SPEC}" in body  # the target's spec version
    assert "TOKEN-MISSING" not in body  # cited, but not what the FAIL rests on
    assert "report: index.html#hs--legacy.refresh.new-pair--header" in body


def test_an_error_says_what_is_known():
    broken = check("e", "ERROR", transport=None, message="precondition failed: login 500")
    [case] = cases(parse(document(broken))).values()
    [error] = case.result
    assert isinstance(error, Error) and error.message == "precondition failed: login 500"
    assert f"rule REFRESH-NEW (MUST): {SPEC}" in error.text
    assert "index.html#hs--e--none" in error.text


def test_skip_kinds_known_issues_and_counts():
    na = {"kind": "not_applicable", "why": "api"}
    xml = parse(
        document(
            check("pass", "PASS"),
            check("fail", "FAIL"),
            check("err", "ERROR"),
            check("na-api", "SKIP", skip=na),
            check("na-api-2", "SKIP", transport="query", skip=na),
            check("na-version", "SKIP", skip={"kind": "not_applicable", "why": "version"}),
            check("nt", "SKIP", skip={"kind": "not_tested", "why": "policy"}),
            check("old-skip", "SKIP"),  # recorded before skip kinds: not tested
            check(
                "known",
                "FAIL",
                expected=401,
                observed=200,
                known_issue={"reason": "synapse#123\nmore", "link": "https://x/123"},
            ),
            check("warn", "WARN"),
        )
    )
    by_name = cases(xml)
    assert not any(name.startswith("na-") for name in by_name)
    [suite] = xml
    p = props(suite)
    assert p["not_applicable"] == "3"
    assert (p["not_applicable.api"], p["not_applicable.version"]) == ("2", "1")
    assert "not_applicable.feature" not in p  # a why that did not occur
    [nt] = by_name["nt[header]"].result
    assert isinstance(nt, Skipped) and nt.type == "not_tested" and "(policy)" in nt.text
    assert "never risked on accounts given in servers.yaml" in nt.text  # errors.SKIP_WHYS
    [old] = by_name["old-skip[header]"].result
    assert isinstance(old, Skipped) and old.type == "not_tested"
    [known] = by_name["known[header]"].result
    assert isinstance(known, Skipped) and known.type == KNOWN_ISSUE_TYPE == "known-issue"
    assert known.message == "known issue: synapse#123"
    assert "expected: 401" in known.text and "observed: 200" in known.text
    assert "known said so" in known.text and "https://x/123" in known.text
    assert [c.name for c in by_name.values() if c.is_failure] == ["fail[header]"]
    assert by_name["warn[header]"].is_passed
    assert "WARN: warn said so" in by_name["warn[header]"].system_out
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (7, 1, 1, 3)
    assert suite.time == 3.5  # the seven cases listed, not the checks left out
    agrees(xml)


def test_a_partial_selection_and_a_target_it_left_out_are_said():
    selection = {"complete": False, "k": "refresh", "requirements": [], "text": "-k 'refresh'"}
    targets = [{"name": "hs"}, {"name": "other", "not_selected": True}]
    doc = document(check("a", "PASS"), check("b", "SKIP"), selection=selection, targets=targets)
    xml = parse(doc)
    hs, other = xml
    assert props(hs)["complete"] == "false" and props(hs)["selection"] == "-k 'refresh'"
    assert props(hs)["not_selected"] == "false"
    assert other.name == "mxconform.other" and other.tests == 0 and not list(other)
    assert props(other)["not_selected"] == "true" and props(other)["complete"] == "false"
    agrees(xml)
    [only] = parse(doc, only_target="hs")
    assert only.name == "mxconform.hs" and only.tests == 2
    [complete] = parse(document(check("a", "PASS")))  # no `selection`: an older document
    assert props(complete)["complete"] == "true"


def test_text_a_server_sent_stays_parseable():
    nasty = "M_\x00BAD\x07 \x1b[31m"
    doc = document(check("x", "FAIL", message=nasty, expected=nasty, observed={"e": nasty}))
    [case] = cases(parse(doc)).values()
    assert "M_\ufffdBAD\ufffd" in case.result[0].text


def test_a_results_json_written_by_the_harness_renders_to_junit_a_dashboard_reads(tmp_path):
    """The real path: records through build_document and write_document, rendered by
    render_all; each anchor a failure names is a row id of the index.html beside it."""

    def record(check_id: str, verdict: Verdict, transport: str | None, **extra: Any):
        return CheckRecord(
            check_id,
            check_id,
            ["REFRESH-401"],
            "synapse-legacy",
            "legacy",
            transport,
            verdict,
            f"{check_id}: message",
            nodeid=f"suites/legacy/check_refresh.py::check_x[synapse-legacy-{transport}]",
            **extra,
        )

    records = [
        record("legacy.refresh.unknown", Verdict.FAIL, "header", expected=401, observed=200),
        record("legacy.refresh.unknown", Verdict.PASS, "query"),
        record(
            "legacy.refresh.gone",
            Verdict.SKIP,
            None,
            skip={"kind": "not_applicable", "why": "version"},
        ),
        record(
            "legacy.refresh.budget",
            Verdict.SKIP,
            None,
            skip={"kind": "not_tested", "why": "budget"},
        ),
        record("legacy.refresh.err", Verdict.ERROR, None),
    ]
    targets = [{"name": "synapse-legacy", "auth": ["legacy"], "spec_version_evaluated": "v1.15"}]
    run = {
        "selection": {
            "complete": False,
            "k": None,
            "requirements": ["REFRESH-401"],
            "text": "-r REFRESH-401",
        }
    }
    doc = build_document(
        harness={}, run=run, targets=targets, records=records, secrets=SecretRegistry()
    )
    results = tmp_path / "results.json"
    write_document(doc, results)
    render_all(results)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    for path in (tmp_path / "junit.xml", tmp_path / "junit-synapse-legacy.xml"):
        xml = Xml.fromfile(str(path))
        by_name = cases(xml)
        assert set(by_name) == {
            "legacy.refresh.unknown[header]",
            "legacy.refresh.unknown[query]",
            "legacy.refresh.budget",
            "legacy.refresh.err",
        }
        assert {c.classname for c in by_name.values()} == {"synapse-legacy.refresh"}
        assert {c.file for c in by_name.values()} == {"suites/legacy/check_refresh.py"}
        [failure] = by_name["legacy.refresh.unknown[header]"].result
        url = json.loads(results.read_text())["requirements"]["REFRESH-401"]["url_by_target"]
        assert f"rule REFRESH-401 (MUST): {url['synapse-legacy']}" in failure.text
        assert "v1.15" in url["synapse-legacy"]
        anchor = failure.text.rsplit("report: index.html#", 1)[1].strip()
        assert f'id="{anchor}"' in html
        [suite] = xml
        assert props(suite)["complete"] == "false" and props(suite)["not_applicable.version"] == "1"
        agrees(xml)
