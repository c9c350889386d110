"""index.html: one self-contained, offline, escape-everything page rendered from results.json."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from ..verdicts import VERDICT_ORDER

_ENV = Environment(
    loader=PackageLoader("mxconform.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


_ENV.filters["pretty"] = _pretty


def _style_hash(style: str) -> str:
    """CSP hash of the inline stylesheet, so the page needs no 'unsafe-inline' at all."""
    return base64.b64encode(hashlib.sha256(str(style).encode()).digest()).decode()


_ENV.globals["style_hash"] = _style_hash


def render_html(document: dict[str, Any]) -> str:
    order = {v.value: i for i, v in enumerate(VERDICT_ORDER)}
    checks = sorted(
        document["checks"], key=lambda c: (c["target"], order.get(c["verdict"], 99), c["check_id"])
    )
    return _ENV.get_template("index.html.j2").render(
        doc=document,
        checks=checks,
        verdicts=[v.value for v in VERDICT_ORDER],
    )
