"""Renderers: every output here is derived from results.json alone."""

from __future__ import annotations

from pathlib import Path

from mxconform.results import read_document

from .allure import render_allure
from .html import render_html
from .junit import render_junit


def render_all(results_path: Path) -> list[Path]:
    """(Re)write index.html, junit.xml and allure-results/ beside a results.json."""
    document = read_document(results_path)
    out = results_path.parent
    html_path = out / "index.html"
    html_path.write_text(render_html(document), encoding="utf-8")
    junit_path = out / "junit.xml"
    junit_path.write_text(render_junit(document), encoding="utf-8")
    for target in dict.fromkeys(c["target"] for c in document["checks"]):
        junit = render_junit(document, only_target=target)
        (out / f"junit-{target}.xml").write_text(junit, encoding="utf-8")
    allure_path = out / "allure-results"
    render_allure(document, allure_path)
    return [html_path, junit_path, allure_path]
