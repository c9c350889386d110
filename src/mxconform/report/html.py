"""index.html: one self-contained, offline, escape-everything page rendered from results.json."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from mxconform.spec.verdicts import VERDICT_ORDER

_ENV = Environment(
    loader=PackageLoader("mxconform.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    # compiling the report's template took a third of a second of every run; jinja keeps the
    # compiled form in a folder of the user's own under the temp folder, keyed by its source
    bytecode_cache=FileSystemBytecodeCache(),
)


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


_ENV.filters["pretty"] = _pretty
_CODE_SPAN = re.compile(r"`([^`]+)`")


def _markdown_code(text: str) -> Markup:
    """A statement's `code` spans as <code>, everything else escaped."""
    escaped = str(escape(text))
    return Markup(_CODE_SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", escaped))


_ENV.filters["mdcode"] = _markdown_code


def _asset(name: str) -> str:
    return (Path(__file__).parent / "templates" / name).read_text()


def _csp_hash(text: str) -> str:
    """CSP hash of an inline block, so the page needs no 'unsafe-inline' at all."""
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


LAZY_VERDICTS = ("PASS", "SKIP", "INFO")
_PLACEHOLDER = re.compile(r"<redacted:([a-z_]+)>")


def curl_command(exchange: dict[str, Any]) -> str:
    """The exchange as a curl command; every redacted secret becomes a $PLACEHOLDER."""

    def unmask(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: "$" + m.group(1).upper(), text)

    parts = ["curl", "-X", exchange["method"], shlex.quote(unmask(exchange["url"]))]
    for name, value in exchange.get("request_headers", []):
        parts += ["-H", shlex.quote(unmask(f"{name}: {value}"))]
    body = exchange.get("request_body")
    if body is not None:
        if isinstance(body, dict) and "form" in body:
            text = "&".join(f"{k}={v}" for k, v in body["form"])
        else:
            text = body if isinstance(body, str) else json.dumps(body)
        parts += ["--data", shlex.quote(unmask(text))]
    return " ".join(parts)


_ENV.filters["curl"] = curl_command


def _area(document: dict[str, Any], check: dict[str, Any]) -> str:
    req = document.get("requirements", {}).get(check["requirements"][0], {})
    return str(req.get("area", "other"))


def headline(target: dict[str, Any], s: dict[str, Any] | None) -> dict[str, Any]:
    """The answer for one target: is every MUST met, and with what counts."""
    if target.get("start_error") or not s:
        return {"state": "unavailable", "text": "not run: " + str(target.get("start_error"))}
    applicable, passed, known = s["must_applicable"], s["must_passed"], s["known_fail"]
    if not applicable:
        return {"state": "ungraded", "text": "nothing graded on MUST"}
    if passed == applicable:
        return {"state": "conformant", "text": f"conformant on MUST ({passed}/{applicable} met)"}
    if passed + known >= applicable:
        return {
            "state": "known",
            "text": f"conformant on MUST but for {known} known deviation"
            + ("s" if known != 1 else "")
            + f" ({passed}/{applicable} met)",
        }
    failing = applicable - passed - known
    return {
        "state": "failing",
        "text": f"NOT conformant on MUST: {failing} not met ({passed}/{applicable} met)",
    }


def render_html(document: dict[str, Any]) -> str:
    order = {v.value: i for i, v in enumerate(VERDICT_ORDER)}
    checks = sorted(
        document["checks"], key=lambda c: (c["target"], order.get(c["verdict"], 99), c["check_id"])
    )
    area_of = {id(c): _area(document, c) for c in checks}
    targets = list(dict.fromkeys(c["target"] for c in checks))
    areas = sorted(set(area_of.values()))
    columns = list(dict.fromkeys((c["target"], c.get("auth_api") or "general") for c in checks))
    declared = {t["name"]: set(t.get("auth") or []) | {"general"} for t in document["targets"]}
    matrix = {
        (area, column): Counter(
            "KNOWN" if c["verdict"] == "FAIL" and c.get("known_issue") else c["verdict"]
            for c in checks
            if area_of[id(c)] == area and (c["target"], c.get("auth_api") or "general") == column
        )
        for area in areas
        for column in columns
    }
    # A column of an API its target does not declare (every check SKIP, "not offered") is
    # collapsed behind a toggle: the table shows what was graded first.
    collapsed = {
        column
        for column in columns
        if column[1] not in declared.get(column[0], {column[1]})
        or all(set(matrix[(a, column)]) <= {"SKIP"} for a in areas)
    }
    summary = document["summary"]
    cards = {t["name"]: headline(t, summary.get(t["name"])) for t in document["targets"]}
    known = {
        name: [c for c in checks if c["target"] == name and c.get("known_issue")]
        for name in targets
    }
    by_requirement: dict[str, list[dict[str, Any]]] = {}
    for check in checks:
        for rid in check["requirements"]:
            by_requirement.setdefault(rid, []).append(check)
    # Evidence of checks that need no attention is rendered on demand, from one inert JSON
    # block: the page stays fast at thousands of checks. "<" is escaped so no string inside
    # can close the block.
    lazy = {
        str(n): [dict(e, curl=curl_command(e)) for e in c["evidence"]]
        for n, c in enumerate(checks)
        if c["verdict"] in LAZY_VERDICTS and c["evidence"]
    }
    lazy_json = json.dumps(lazy, ensure_ascii=False).replace("<", "\\u003c")
    style, script = _asset("report.css"), _asset("report.js")
    return _ENV.get_template("index.html.j2").render(
        doc=document,
        checks=checks,
        verdicts=[v.value for v in VERDICT_ORDER],
        targets=targets,
        areas=areas,
        matrix=matrix,
        columns=columns,
        collapsed=collapsed,
        cards=cards,
        known=known,
        baseline=document["run"].get("baseline"),
        by_requirement=by_requirement,
        area=lambda check: area_of[id(check)],
        lazy_verdicts=LAZY_VERDICTS,
        lazy_json=lazy_json,
        style=style,
        script=script,
        csp=f"default-src 'none'; style-src '{_csp_hash(style)}'; "
        f"script-src '{_csp_hash(script)}'; img-src data:",
    )
