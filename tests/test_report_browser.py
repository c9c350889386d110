"""The HTML report in a real browser (Playwright driving Debian's chromium, headless): it makes
no network request, logs no console error, filters rows from the URL fragment and the
checkboxes, opens a check's evidence, and shows a server's <script> as text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_report import check, document

from mxconform.oauth.drivers.browser import CHROMIUM_FLAGS
from mxconform.report import render_all

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
FLAGS = ["--headless", *CHROMIUM_FLAGS]  # the browser driver's own flags


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def report(tmp_path: Path) -> Path:
    exchange = {
        "method": "GET",
        "url": "http://t/_matrix/client/v3/account/whoami",
        "request_headers": [["authorization", "Bearer <redacted:credential>"]],
        "request_body": None,
        "started_at": "",
        "duration_ms": 1,
        "error": None,
        "note": None,
        "status": 401,
        "response_headers": [],
        "response_body": {"errcode": "M_X", "error": "<script>window.pwned=1</script>"},
    }
    doc = document(
        check("tokens.a", "PASS", evidence=[exchange]),
        check("tokens.b", "FAIL", evidence=[exchange], message="<img src=x onerror=alert(1)>"),
        check("tokens.c", "INFO"),
    )
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    return render_all(path)[0]


def open_report(browser, report: Path, fragment: str = ""):
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: problems.append(r.url) if not r.url.startswith("file:") else None)
    page.goto(report.as_uri() + fragment)
    return page, problems


def visible_rows(page) -> list[str]:
    return page.eval_on_selector_all(
        "tr.check:not([hidden]) td:nth-child(2) code", "els => els.map(e => e.textContent)"
    )


def test_report_is_quiet_and_offline(browser, report):
    page, problems = open_report(browser, report)
    assert visible_rows(page) == ["tokens.b"]  # FAIL, ERROR and WARN at first
    page.check('input[data-group="verdict"][value="INFO"]')
    page.check('input[data-group="verdict"][value="PASS"]')
    assert visible_rows(page) == ["tokens.b", "tokens.c", "tokens.a"]
    assert page.evaluate("window.pwned") is None
    assert "<script>window.pwned=1</script>" in page.inner_text("body")
    assert "<img src=x onerror=alert(1)>" in page.inner_text("body")
    assert problems == []


def test_filters_follow_the_fragment_and_the_checkboxes(browser, report):
    page, problems = open_report(browser, report, "#verdict=FAIL")
    assert visible_rows(page) == ["tokens.b"]
    page.check('input[data-group="verdict"][value="PASS"]')
    assert sorted(visible_rows(page)) == ["tokens.a", "tokens.b"]
    assert "verdict=" in page.evaluate("location.hash")
    assert page.inner_text("#shown-count") == "2"
    assert problems == []


def test_a_check_detail_opens(browser, report):
    from playwright.sync_api import expect

    page, problems = open_report(browser, report, "#verdict=FAIL,PASS")
    failed = page.locator("tr.check", has_text="tokens.b")
    assert failed.locator("details.evidence").get_attribute("open") is not None
    row = page.locator("tr.check", has_text="tokens.a")
    assert row.locator("div.evidence").count() == 0  # PASS evidence is built on demand
    row.locator("button.lazy-evidence").click()
    expect(row.locator("div.evidence")).to_be_visible()  # unpacked (gzip) first
    curl = row.locator("div.evidence details pre").first.text_content() or ""
    assert curl.startswith("curl -X GET") and "Bearer $CREDENTIAL" in curl
    # a server's markup stays text in evidence built on demand too
    assert "<script>window.pwned=1</script>" in row.locator("div.evidence").inner_text()
    assert page.evaluate("window.pwned") is None
    row.locator("button.lazy-evidence").click()
    assert not row.locator("div.evidence").is_visible()
    assert problems == []


@pytest.fixture
def two_targets(tmp_path: Path) -> Path:
    """A legacy target with a known deviation and a real FAIL, and an OAuth target, each
    with the other API's checks SKIP ("not offered")."""
    known = {"reason": "answers 403 where the spec says 401", "link": "https://x"}
    doc = document(
        check("tokens.a", "PASS"),
        check("tokens.b", "FAIL", known_issue=known),
        check("tokens.c", "SKIP", auth_api="oauth"),
        check("tokens.d", "PASS", target="o", auth_api="oauth"),
        check("tokens.e", "SKIP", target="o", auth_api="legacy"),
    )
    doc["targets"].append(dict(doc["targets"][0], name="o", auth=["oauth"]))
    doc["targets"][0]["server_header"] = "Synapse/1.163.2"
    doc["targets"][0]["spec_version_evaluated"] = "v1.15"
    doc["targets"][0]["spec_version_source"] = "advertised"
    doc["requirements"]["TOKEN-MISSING"]["statement"] = "Send `M_MISSING_TOKEN` <b>now</b>"
    path = tmp_path / "results.json"
    from mxconform.results import summarise

    doc["summary"] = summarise(doc["checks"])
    path.write_text(json.dumps(doc))
    return render_all(path)[0]


def test_the_page_leads_with_a_headline_card_per_target(browser, two_targets):
    page, problems = open_report(browser, two_targets)
    cards = page.locator("section.cards article.card")
    assert cards.count() == 2
    first = cards.nth(0)
    assert "known" in (first.get_attribute("class") or "")
    answer = first.locator(".answer").inner_text()
    assert answer.startswith("conformant on MUST but for 1 known deviation")
    assert "KNOWN 1" in first.inner_text() and "FAIL 1" not in first.inner_text()
    assert "Synapse/1.163.2" in first.inner_text() and "v1.15" in first.inner_text()
    assert "the newest version it advertises" in first.inner_text()
    assert cards.nth(1).locator(".answer").inner_text().startswith("conformant on MUST")
    # the harness's own version is stated apart from any server's
    assert page.locator("p.harness").inner_text().startswith("Harness: mxconform")
    # a requirement's `code` is code, and its other markup stays text
    page.click("#requirements > summary")  # the requirements are behind their summary
    statement = page.locator("td", has_text="M_MISSING_TOKEN").first
    assert statement.locator("code").inner_text() == "M_MISSING_TOKEN"
    assert "<b>now</b>" in statement.inner_text()
    assert problems == []


def test_columns_of_undeclared_apis_are_collapsed_behind_a_toggle(browser, two_targets):
    page, problems = open_report(browser, two_targets)
    headers = page.locator("table.matrix thead th")
    visible = [h.inner_text().replace("\n", " ") for h in headers.all() if h.is_visible()]
    assert sorted(visible) == ["Area", "o oauth API", "t legacy API"]
    page.check("#all-columns")
    visible = [h.inner_text().replace("\n", " ") for h in headers.all() if h.is_visible()]
    assert sorted(visible) == sorted(
        ["Area", "t legacy API", "t oauth API", "o oauth API", "o legacy API"]
    )
    assert problems == []


def test_no_horizontal_scroll_at_1280_px(browser, report):
    page, problems = open_report(browser, report)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert problems == []


def test_a_fail_shows_the_judged_exchange_first(browser, tmp_path: Path):
    def exchange(path: str, status: int) -> dict:
        return {
            "method": "POST",
            "url": f"http://t{path}",
            "request_headers": [],
            "request_body": None,
            "started_at": "",
            "duration_ms": 1,
            "error": None,
            "note": None,
            "status": status,
            "response_headers": [],
            "response_body": None,
        }

    evidence = [exchange("/register", 200), exchange("/login", 200), exchange("/refresh", 403)]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document(check("refresh.consumed", "FAIL", evidence=evidence))))
    page, problems = open_report(browser, render_all(path)[0])
    row = page.locator("tr.check", has_text="refresh.consumed")
    shown = [e.inner_text() for e in row.locator("div.exchange").all() if e.is_visible()]
    assert len(shown) == 1 and shown[0].startswith("POST http://t/refresh → 403")
    earlier = row.locator("details.earlier")
    assert earlier.get_attribute("open") is None
    summary = earlier.locator("> summary")
    assert "2 earlier exchanges" in summary.inner_text()
    summary.click()
    assert sum(e.is_visible() for e in row.locator("div.exchange").all()) == 3
    assert problems == []
