"""The matrix page in a real browser (as test_report_browser.py): no request leaves the page,
filters follow the fragment and the checkboxes, a cell links to its run's report."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_matrix import tonight
from test_report_browser import CHROMIUM, browser  # noqa: F401  (the fixture)

from mxconform.report.matrix import write_matrix

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


@pytest.fixture
def page_path(tmp_path: Path) -> Path:
    return write_matrix(tonight(tmp_path), tmp_path / "site")[0]


def open_page(browser, path: Path, fragment: str = ""):  # noqa: F811
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: problems.append(r.url) if not r.url.startswith("file:") else None)
    page.goto(path.as_uri() + fragment)
    return page, problems


def rows(page) -> list[str]:
    return page.eval_on_selector_all(
        "#matrix tr.req:not([hidden]) th a", "els => els.map(e => e.textContent)"
    )


def columns(page) -> list[str]:
    return page.eval_on_selector_all(
        "#matrix th.col:not([hidden]) a", "els => els.map(e => e.textContent)"
    )


def test_matrix_is_quiet_and_offline(browser, page_path):  # noqa: F811
    page, problems = open_page(browser, page_path)
    assert rows(page) == ["LOGIN-GET", "TOKEN-MISSING", "TOKEN-SHAPE"]
    assert columns(page) == ["synapse-new", "synapse-old"]
    assert page.inner_text("#shown-count") == "3"
    assert problems == []


def test_filters_follow_the_fragment_and_the_checkboxes(browser, page_path):  # noqa: F811
    page, problems = open_page(browser, page_path, "#verdict=WARN")
    assert rows(page) == ["TOKEN-SHAPE"]
    page.check('input[data-group="verdict"][value="FAIL"]')
    assert rows(page) == ["TOKEN-MISSING", "TOKEN-SHAPE"]  # a known FAIL is KNOWN
    page.check('input[data-group="verdict"][value="KNOWN"]')
    assert rows(page) == ["LOGIN-GET", "TOKEN-MISSING", "TOKEN-SHAPE"]
    page.evaluate("location.hash = '#target=synapse-old&verdict=FAIL'")
    page.wait_for_function("document.getElementById('shown-count').textContent === '1'")
    assert columns(page) == ["synapse-old"] and rows(page) == ["TOKEN-MISSING"]
    page.uncheck('input[data-group="level"][value="MUST"]')
    assert rows(page) == [] and "level=SHOULD" in page.evaluate("location.hash")
    assert problems == []


def test_a_cell_links_to_its_report(browser, page_path):  # noqa: F811
    page, problems = open_page(browser, page_path)
    cell = page.locator('#req-TOKEN-MISSING td[data-col="synapse-old"] a')
    assert cell.text_content() == "FAIL"
    href = cell.get_attribute("href") or ""
    assert href == "../runs/old/index.html#target=synapse-old&area=tokens&verdict=FAIL"
    cell.click()
    page.wait_for_url("**/runs/old/index.html#target=synapse-old&area=tokens&verdict=FAIL")
    assert page.inner_text("body") == "report"
    assert problems == []
