"""Renderers and the run-to-run diff, on synthetic results documents."""

from __future__ import annotations

import json
from html import unescape
from pathlib import Path

from mxconform.cli import main
from mxconform.report import render_all
from mxconform.report.diff import diff_results
from mxconform.results import SCHEMA_VERSION


def check(check_id: str, verdict: str, transport: str | None = "header", **extra) -> dict:
    return {
        "check_id": check_id,
        "title": check_id,
        "requirements": ["TOKEN-MISSING"],
        "target": "t",
        "auth_api": "legacy",
        "transport": transport,
        "verdict": verdict,
        "message": "m",
        "expected": None,
        "observed": None,
        "findings": [],
        "observations": [],
        "duration_s": 0.01,
        "evidence": [],
        "nodeid": "",
        "known_issue": None,
        **extra,
    }


def document(*checks: dict) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "harness": {"version": "x", "git_commit": None},
        "run": {
            "started_at": "2026-11-26T10:00:00+00:00",
            "finished_at": "2026-11-26T10:00:01+00:00",
            "duration_s": 1,
            "command": "c",
        },
        "targets": [
            {
                "name": "t",
                "auth": ["legacy"],
                "base_url": "http://t",
                "server_name": "t",
                "provisioning": "static-users",
                "housekeeping": None,
            }
        ],
        "summary": {},
        "requirements": {
            "TOKEN-MISSING": {
                "level": "MUST",
                "area": "tokens",
                "statement": "s",
                "url": "https://spec.matrix.org/x",
            }
        },
        "checks": list(checks),
    }


def test_diff_sorts_changes_and_flags_regressions():
    old = document(
        check("a", "PASS"),
        check("b", "FAIL"),
        check("c", "FAIL"),
        check("d", "INFO"),
        check("gone", "PASS"),
    )
    new = document(
        check("a", "FAIL"),
        check("b", "PASS"),
        check("c", "FAIL"),
        check("d", "WARN"),
        check("new", "FAIL"),
        check("known", "FAIL", known_issue={"reason": "r", "link": "https://x"}),
    )
    d = diff_results(old, new)
    assert [k[0] for k in d.regressions] == ["a", "new"]
    assert [k[0] for k in d.fixed] == ["b"] and [k[0] for k in d.still_failing] == ["c"]
    assert d.changed == [(("d", "t", "header"), "INFO", "WARN")]
    assert d.lost_coverage == [(("gone", "t", "header"), "PASS", "absent")] and d.removed == []
    assert {k[0] for k in d.added} == {"new", "known"}


def test_diff_command_exit_codes(tmp_path: Path, capsys):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(document(check("a", "PASS"))))
    new.write_text(json.dumps(document(check("a", "FAIL"))))
    assert main(["diff", str(old), str(new)]) == 1
    assert "regressions (new FAIL): 1" in capsys.readouterr().out
    assert main(["diff", str(new), str(old)]) == 0
    assert main(["diff", str(old), str(tmp_path / "missing.json")]) == 2


def test_html_escapes_what_a_server_sent(tmp_path: Path):
    hostile = check(
        "x",
        "FAIL",
        message="<script>alert(1)</script>",
        evidence=[
            {
                "method": "GET",
                "url": "http://t/<img src=x onerror=1>",
                "request_headers": [],
                "request_body": None,
                "status": 401,
                "started_at": "",
                "duration_ms": 1,
                "error": None,
                "note": None,
                "response_headers": [["content-type", "text/html"]],
                "response_body": "<script>steal()</script>",
            }
        ],
    )
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document(hostile)))
    html_path, junit_path, _ = render_all(path)
    html = html_path.read_text()
    # the report's own filter script and its inert evidence data, nothing a server sent
    assert html.count("<script>") == 1 and html.count("<script") == 2
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html
    assert "default-src 'none'" in unescape(html.split("<body>")[0])
    assert "<failure" in junit_path.read_text()


def test_rendering_is_deterministic(tmp_path: Path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document(check("a", "PASS"), check("b", "WARN"))))
    first = [p.read_text() for p in render_all(path)[:2]]
    second = [p.read_text() for p in render_all(path)[:2]]
    assert first == second


def test_allure_results_carry_labels_links_and_exchanges(tmp_path: Path):
    exchange = {
        "method": "GET",
        "url": "http://t/x",
        "request_headers": [],
        "status": 401,
        "request_body": None,
        "started_at": "",
        "duration_ms": 1,
        "error": None,
        "note": None,
        "response_headers": [],
        "response_body": {"errcode": "X"},
    }
    doc = document(check("tokens.missing.rejected.whoami", "FAIL", evidence=[exchange]))
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    allure_dir = render_all(path)[2]
    [result_file] = list(allure_dir.glob("*-result.json"))
    result = json.loads(result_file.read_text())
    labels = {(label["name"], label["value"]) for label in result["labels"]}
    assert {("epic", "legacy API"), ("feature", "tokens"), ("story", "TOKEN-MISSING")} <= labels
    assert result["status"] == "failed" and result["links"][0]["url"].startswith("https://spec")
    [attachment] = result["attachments"]
    assert json.loads((allure_dir / attachment["source"]).read_text())["status"] == 401


def test_merge_repeats_keeps_the_worst_verdict_and_every_runs_evidence():
    from mxconform.report.repeat import merge_repeats

    first = document(check("a", "PASS", evidence=[{"n": 1}]), check("b", "PASS"))
    second = document(check("a", "FAIL", evidence=[{"n": 2}]), check("b", "PASS"))
    merged = merge_repeats([first, second])
    a, b = merged["checks"]
    assert a["verdict"] == "FAIL" and a["flaky"]["verdicts"] == ["PASS", "FAIL"]
    assert [r["evidence"] for r in a["flaky"]["runs"]] == [[{"n": 1}], [{"n": 2}]]
    assert "flaky" not in b and b["repeats"] == 2
    assert merged["summary"]["t"]["flaky"] == 1


def test_junit_is_valid_xml_when_a_server_sends_control_characters(tmp_path: Path):
    import xml.etree.ElementTree as ET

    nasty = "M_\x00BAD\x07 errcode \x1b[31m red\x0b"
    doc = document(
        check("x", "FAIL", message=nasty),
        check("y", "ERROR", message=nasty, transport=None),
        check("z", "WARN", message=nasty, transport="query"),
        check(f"k{nasty}", "FAIL", known_issue={"reason": nasty, "link": "https://x"}),
    )
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    _, junit_path, _ = render_all(path)
    text = junit_path.read_text()
    root = ET.fromstring(text.encode())  # raises on any character XML 1.0 forbids
    assert not any(ch in text for ch in "\x00\x07\x1b\x0b")
    assert "M_\ufffdBAD\ufffd errcode" in text and len(root.findall(".//testcase")) == 4


def test_target_box_shows_limits_and_warns_when_tls_is_not_verified(tmp_path: Path):
    doc = document(check("a", "PASS"))
    doc["targets"][0] |= {
        "tls_verify": False,
        "limits": {
            "timeout_s": 10.0,
            "deadline_s": 30.0,
            "max_response_bytes": 4194304,
            "max_requests_per_second": 20.0,
            "rate_limit_budget_429": 10,
            "rate_limit_budget_s": 120.0,
        },
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    page = render_all(path)[0].read_text()
    assert "TLS certificates not verified" in page and 'class="badge WARN"' in page
    assert "30.0 s per request, 4.0 MiB per body, 20.0 requests/s" in page
    doc["targets"][0]["tls_verify"] = True
    path.write_text(json.dumps(doc))
    assert "TLS certificates not verified" not in render_all(path)[0].read_text()
