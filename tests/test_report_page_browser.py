"""The report page's layout and default view in a real browser (Playwright driving Debian's
chromium, headless, as test_report_browser.py): at 1280 px no word of a header, a check id, a
rule id or a target name is broken across lines (a screenshot is kept under tmp_path), the page
opens short, and KNOWN, ERROR and FAIL have colours of their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_matrix import run_doc, write
from test_report import check
from test_report_browser import CHROMIUM, browser, open_report  # noqa: F401  (the fixture)
from test_report_page import KNOWN, NA, NOT_TESTED, page_doc

from mxconform.report import render_all
from mxconform.report.matrix import write_matrix

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
EVERY = "#verdict=FAIL,KNOWN,ERROR,WARN,INFO,PASS,SKIP"

# Words (runs without a space, hyphen, dot or slash) split across two lines, under `selector`.
BROKEN_WORDS = """selector => {
  const broken = [];
  for (const root of document.querySelectorAll(selector)) {
    if (!root.offsetParent) continue;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.textContent.matchAll(/[^\\s.\\-\\/,:()]+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set(Array.from(range.getClientRects(), r => Math.round(r.top)));
        if (lines.size > 1) broken.push(m[0]);
      }
    }
  }
  return broken;
}"""

NARROW_CELLS = """() => Array.from(document.querySelectorAll("td, th"))
  .filter(e => e.offsetParent && !e.closest(".exchange"))
  .map(e => [Math.round(e.getBoundingClientRect().width), e.textContent.trim().slice(0, 40)])
  .filter(([w]) => w < 48)"""

# Cells whose content runs out of them (over the next column: a fixed layout clips nothing).
SPILLING_CELLS = """() => Array.from(document.querySelectorAll("td, th"))
  .filter(e => e.offsetParent && e.scrollWidth > e.clientWidth + 1)
  .map(e => e.textContent.trim().slice(0, 40))"""


def exchange(url: str, status: int) -> dict:
    return {
        "method": "POST",
        "url": url,
        "request_headers": [["authorization", "Bearer <redacted:credential>"]],
        "request_body": {"auth": {"type": "m.login.password", "session": "x" * 120}},
        "started_at": "",
        "duration_ms": 3,
        "error": None,
        "note": None,
        "status": status,
        "response_headers": [["x-long", "y" * 300]],
        "response_body": {"errcode": "M_FORBIDDEN", "error": "z" * 250},
    }


@pytest.fixture
def wide(tmp_path: Path) -> Path:
    """The longest things a run writes: ids, rule ids, target names, URLs, unbroken tokens."""
    url = "http://synapse.example.org:8448/_matrix/client/v3/" + "a" * 260 + "?session=" + "b" * 90
    long_ids = [
        "oauth.uia.refused-with-password.cross-signing-replace",
        "legacy.register.invalid-username",
        "oauth.cors.preflight.device-authorization",
    ]
    rules = ["OAUTH-DCR-COMMON-BASE-OTHER", "API-ERR-SHAPE"]
    verdicts = [("FAIL", None), ("FAIL", KNOWN), ("ERROR", None), ("WARN", None), ("INFO", None)]
    checks = [
        check(
            f"{cid}.{verdict.lower()}",
            verdict,
            target="synapse-legacy-staging",
            title="A wrong password stage answers the 401 UIA body plus the standard `errcode`",
            message="expected 401, got 403: " + "q" * 180,
            expected={"status": 401, "errcode": "M_FORBIDDEN"},
            observed={"status": 403, "body": "w" * 200},
            requirements=rules,
            basis=rules[:1],
            known_issue=known,
            evidence=[exchange(url, 200), exchange(url, 403)],
        )
        for cid in long_ids
        for verdict, known in verdicts
    ]
    checks += [
        check("tokens.pass", "PASS", evidence=[exchange(url, 200)]),
        check("tokens.na", "SKIP", skip=NA),
        check("tokens.untested", "SKIP", skip=NOT_TESTED),
    ]
    doc = page_doc(*checks)
    doc["requirements"]["OAUTH-DCR-COMMON-BASE-OTHER"] = dict(
        doc["requirements"]["API-BAD-JSON"], area="oauth-registration"
    )
    doc["targets"].insert(0, dict(doc["targets"][0], name="synapse-legacy-staging"))
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    return render_all(path)[0]


def test_at_1280_px_nothing_breaks_letter_by_letter(browser, wide, tmp_path: Path):  # noqa: F811
    page, problems = open_report(browser, wide, EVERY)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    page.locator("button.lazy-evidence").first.click()
    page.wait_for_selector("div.evidence")
    shot = tmp_path / "report-1280.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.evaluate(NARROW_CELLS) == []
    assert page.evaluate(SPILLING_CELLS) == []
    for where in ("th", "code.cid", "a.rid", "tr.check td:nth-child(3)", ".card h2", ".badge"):
        assert page.evaluate(BROKEN_WORDS, where) == [], where
    # a check id wraps at its dots only, and the check column stays readable
    widths = page.eval_on_selector_all(
        "tr.check td:nth-child(2)", "els => els.map(e => e.offsetWidth)"
    )
    assert min(widths) >= 200
    assert problems == []


def test_the_page_opens_short(browser, tmp_path: Path):  # noqa: F811
    ex = exchange("http://t/_matrix/client/v3/account/whoami", 200)
    quiet = [("PASS", {}), ("INFO", {}), ("SKIP", {"skip": NA})]
    checks = [
        check(f"tokens.c{i}", verdict, evidence=[ex] * 3, **extra)
        for i in range(300)
        for verdict, extra in [quiet[i % 3]]
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(page_doc(check("tokens.bad", "FAIL", evidence=[ex]), *checks)))
    report = render_all(path)[0]
    page, problems = open_report(browser, report)
    page.set_viewport_size({"width": 1280, "height": 900})
    short = page.evaluate("document.documentElement.scrollHeight")
    assert page.inner_text("#shown-count") == "1" and short < 2500
    page.evaluate("location.hash = '#verdict=PASS,INFO,SKIP'")
    page.wait_for_function("document.getElementById('shown-count').textContent === '300'")
    assert page.evaluate("document.documentElement.scrollHeight") > 5 * short
    assert problems == []


def test_a_link_to_a_row_the_view_hides_shows_it(browser, tmp_path: Path):  # noqa: F811
    path = tmp_path / "results.json"
    doc = page_doc(check("tokens.bad", "FAIL"), check("tokens.k", "FAIL", known_issue=KNOWN))
    path.write_text(json.dumps(doc))
    page, problems = open_report(browser, render_all(path)[0])
    row = page.locator("#t--tokens\\.k--header")
    assert not row.is_visible()  # KNOWN is behind its filter
    page.click("details.known > summary")
    page.click("details.known a")
    page.wait_for_function("!document.getElementById('t--tokens.k--header').hidden")
    assert row.is_visible() and page.locator("tr.check", has_text="tokens.bad").is_visible()
    page.evaluate("location.hash = '#verdict=KNOWN'")
    page.wait_for_function("document.getElementById('shown-count').textContent === '1'")
    assert not page.locator("tr.check", has_text="tokens.bad").is_visible()
    assert problems == []


BACKGROUND = "sel => getComputedStyle(document.querySelector(sel)).backgroundColor"


def test_known_error_and_fail_have_colours_of_their_own(browser, tmp_path: Path):  # noqa: F811
    doc = page_doc(
        check("tokens.bad", "FAIL"),
        check("tokens.k", "FAIL", known_issue=KNOWN),
        check("tokens.e", "ERROR"),
    )
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    page, problems = open_report(browser, render_all(path)[0])
    colours = [page.evaluate(BACKGROUND, f".card .badge.{v}") for v in ("FAIL", "KNOWN", "ERROR")]
    assert len(set(colours)) == 3, colours
    # in the matrix, a known FAIL is not red either
    known = run_doc(
        "2026-11-30T02:00:00+00:00",
        {
            "k": [check("tokens.missing", "FAIL", known_issue=KNOWN)],
            "f": [check("tokens.missing", "FAIL")],
        },
    )
    site = write_matrix([write(tmp_path / "run", known)], tmp_path / "site")[0]
    page, problems = open_report(browser, site)
    cell = '#req-TOKEN-MISSING td[data-col="{}"]'
    assert page.evaluate(BACKGROUND, cell.format("k")) != page.evaluate(
        BACKGROUND, cell.format("f")
    )
    assert page.locator(cell.format("k")).inner_text().strip() == "known"
    assert problems == []
