"""Renderers: every output here is derived from results.json alone."""

from __future__ import annotations

from pathlib import Path

from ..results import read_document
from .html import render_html
from .junit import render_junit


def render_all(results_path: Path) -> list[Path]:
    """(Re)write index.html and junit.xml beside a results.json."""
    document = read_document(results_path)
    out = results_path.parent
    html_path = out / "index.html"
    html_path.write_text(render_html(document))
    junit_path = out / "junit.xml"
    junit_path.write_text(render_junit(document))
    return [html_path, junit_path]
