"""index.html: one self-contained, offline, escape-everything page rendered from results.json."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, PackageLoader, select_autoescape
from markupsafe import Markup, escape

import mxconform.results as _results
from mxconform.results import is_complete, judged_rules, rule_verdicts
from mxconform.results import skip_kind as kind_and_why
from mxconform.spec.verdicts import DISPLAY_ORDER

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


def _markdown_code(text: Any) -> Markup:
    """A statement's `code` spans as <code>, everything else escaped."""
    escaped = str(escape("" if text is None else str(text)))
    return Markup(_CODE_SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", escaped))


def _plain(text: Any) -> str:
    """A text for an attribute (a tooltip): its code spans without their backticks."""
    return _CODE_SPAN.sub(lambda m: m.group(1), "" if text is None else str(text))


def _id_breaks(text: str) -> Markup:
    """A check id that wraps after its dots only (each part kept whole, its hyphens too)."""
    parts = text.split(".")
    spans = [f"{escape(p)}." for p in parts[:-1]] + [str(escape(parts[-1]))]
    return Markup("<wbr>".join(f"<span>{s}</span>" for s in spans))


_ENV.filters["mdcode"] = _markdown_code
_ENV.filters["plain"] = _plain
_ENV.filters["idbreak"] = _id_breaks


def _asset(name: str) -> str:
    return (Path(__file__).parent / "templates" / name).read_text()


def _csp_hash(text: str) -> str:
    """CSP hash of an inline block, so the page needs no 'unsafe-inline' at all."""
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


LAZY_VERDICTS = ("PASS", "SKIP", "INFO")
_PLACEHOLDER = re.compile(r"<redacted:([a-z_]+)>")

# SKIP is two things (results.json `skip.kind`): the rule does not apply, or the harness could
# not test it; a SKIP without the field (an older document) counts as not tested.
SKIP_KINDS = tuple(_results.SKIP_WHYS)  # not_applicable, not_tested
# What a row, a count or a filter says of a check: DISPLAY_ORDER with SKIP split by its kind.
TOKENS = tuple(
    t for v in DISPLAY_ORDER for t in ([k.upper() for k in SKIP_KINDS] if v == "SKIP" else [v])
)
LABELS = {t: t for t in TOKENS} | {
    "NOT_APPLICABLE": "SKIP n/a",
    "NOT_TESTED": "SKIP not tested",
    "OBSERVED": "observed",  # a rule its checks cite but judged none of (rule_verdicts)
}
SHOWN_BY_DEFAULT = ("FAIL", "ERROR", "WARN")  # what needs attention; the rest behind filters
CARD_FAILS = 10  # a card lists this many unknown FAILs, then links to the rest


def skip_kind(check: dict[str, Any]) -> str:
    """A SKIP's kind (`results.skip_kind`: one without the field was not tested)."""
    kind = (kind_and_why(check) or ("not_tested", ""))[0]
    return kind if kind in SKIP_KINDS else "not_tested"


def skip_why(check: dict[str, Any]) -> str:
    """The human text of a SKIP's why (errors.SKIP_WHYS, as results exports it)."""
    kind, why = kind_and_why(check) or ("not_tested", "")
    return _results.SKIP_WHYS.get(kind, {}).get(why, why)


def token(check: dict[str, Any]) -> str:
    """A check's place in the listings: a known FAIL is KNOWN, a SKIP its kind."""
    verdict = str(check["verdict"])
    if verdict == "FAIL" and check.get("known_issue"):
        return "KNOWN"
    if verdict == "SKIP":
        return skip_kind(check).upper()
    return verdict


def rule_tokens(checks: list[dict[str, Any]], target: str) -> dict[str, dict[str, Any]]:
    """`results.rule_verdicts` of `target`, each with its token: a known FAIL is KNOWN, a
    SKIP not applicable only when every SKIP citing the rule is (else not tested)."""
    kinds: dict[str, set[str]] = {}
    for c in checks:
        if c["target"] == target and c["verdict"] == "SKIP":
            for rid in c["requirements"]:
                kinds.setdefault(rid, set()).add(skip_kind(c))
    out = {}
    for rid, entry in rule_verdicts(checks, target).items():
        verdict = entry["verdict"]
        if verdict == "FAIL" and entry["known"]:
            verdict = "KNOWN"
        elif verdict == "SKIP":
            verdict = "NOT_APPLICABLE" if kinds.get(rid) == {"not_applicable"} else "NOT_TESTED"
        out[rid] = dict(entry, token=verdict)
    return out


def judged_token(check: dict[str, Any], rid: str) -> str:
    """What `check` says of rule `rid`: its token where its verdict rests on the rule, else
    OBSERVED (cited, but the verdict judged another of its rules)."""
    return token(check) if rid in judged_rules(check) else "OBSERVED"


_ENV.filters["token"] = token
_ENV.filters["judged_token"] = judged_token


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


def selection_text(document: dict[str, Any]) -> str | None:
    """How the run's checks were selected, when not all of them ran; None for a full run."""
    if is_complete(document):
        return None
    selection = document["run"]["selection"]
    if selection.get("text"):
        return str(selection["text"])
    parts = [f"-k {selection['k']}"] if selection.get("k") else []
    parts += [f"--requirement {r}" for r in selection.get("requirements") or []]
    return " ".join(parts) or "part of the checks"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("s" if n != 1 else "")


def headline(
    target: dict[str, Any], s: dict[str, Any] | None, selection: str | None = None
) -> dict[str, Any]:
    """The answer for one target: is every MUST met, and with what counts. A partial selection
    is named and never called conformant: it says nothing of the checks left out."""
    if target.get("not_selected") or (s or {}).get("not_selected"):
        return {"state": "not-selected", "text": "not selected: no selected check applies to it"}
    if target.get("start_error") or not s:
        return {"state": "unavailable", "text": "not run: " + str(target.get("start_error"))}
    applicable, passed, known = s["must_applicable"], s["must_passed"], s["known_fail"]
    failing = max(0, applicable - passed - known)
    if not applicable:
        return {"state": "ungraded", "text": "nothing graded on MUST"}
    if selection is not None:
        text = f"selection ({selection}): MUST met {passed}/{applicable} of the selected checks"
        if failing:
            return {"state": "failing", "text": f"{text}, {failing} not met"}
        if known:
            return {"state": "known", "text": f"{text}, {_plural(known, 'known deviation')}"}
        return {"state": "partial", "text": text}
    if passed == applicable:
        return {"state": "conformant", "text": f"conformant on MUST ({passed}/{applicable} met)"}
    if not failing:
        return {
            "state": "known",
            "text": f"conformant on MUST but for {_plural(known, 'known deviation')}"
            f" ({passed}/{applicable} met)",
        }
    return {
        "state": "failing",
        "text": f"NOT conformant on MUST: {failing} not met ({passed}/{applicable} met)",
    }


def row_id(check: dict[str, Any]) -> str:
    return f"{check['target']}--{check['check_id']}--{check.get('transport') or 'none'}"


def _rule_link(document: dict[str, Any], rid: str, target: str) -> dict[str, Any]:
    req = document.get("requirements", {}).get(rid) or {}
    url = (req.get("url_by_target") or {}).get(target) or req.get("url") or ""
    return {"id": rid, "url": url, "level": req.get("level", "")}


def card_fails(document: dict[str, Any], checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Per target, its FAILs not listed as known issues, each with the rules it broke."""
    out: dict[str, list[dict[str, Any]]] = {}
    for c in checks:
        if token(c) == "FAIL":
            rules = judged_rules(c) or c["requirements"][:1]
            links = [_rule_link(document, rid, c["target"]) for rid in rules]
            out.setdefault(c["target"], []).append({"check": c, "rules": links})
    return out


def _lazy_blob(checks: list[dict[str, Any]]) -> str:
    """The evidence of checks that need no attention, as one gzip, base64 and JSON string: the
    page's script unpacks it when a button asks (most of a run's bytes, a twentieth of them
    packed). gzip without a timestamp, so a re-render is byte for byte the same."""
    lazy = {
        str(n): [dict(e, curl=curl_command(e)) for e in c["evidence"]]
        for n, c in enumerate(checks)
        if c["verdict"] in LAZY_VERDICTS and c["evidence"]
    }
    packed = gzip.compress(json.dumps(lazy, ensure_ascii=False).encode(), 9, mtime=0)
    return json.dumps(base64.b64encode(packed).decode())


def _areas(
    checks: list[dict[str, Any]], area_of: dict[int, str], document: dict[str, Any]
) -> dict[str, Any]:
    """The spec areas by target and auth API: counts per token; the columns of an API a
    target does not declare (SKIP only, "not offered") collapsed behind a toggle."""
    areas = sorted(set(area_of.values()))
    columns = list(dict.fromkeys((c["target"], c.get("auth_api") or "general") for c in checks))
    declared = {t["name"]: set(t.get("auth") or []) | {"general"} for t in document["targets"]}
    counts = {
        (area, column): Counter(
            token(c)
            for c in checks
            if area_of[id(c)] == area and (c["target"], c.get("auth_api") or "general") == column
        )
        for area in areas
        for column in columns
    }
    skips = {t.upper() for t in SKIP_KINDS}
    collapsed = {
        column
        for column in columns
        if column[1] not in declared.get(column[0], {column[1]})
        or all(set(counts[(a, column)]) <= skips for a in areas)
    }
    return {"areas": areas, "columns": columns, "matrix": counts, "collapsed": collapsed}


def render_html(document: dict[str, Any]) -> str:
    order = {t: i for i, t in enumerate(TOKENS)}
    checks = sorted(
        document["checks"], key=lambda c: (c["target"], order.get(token(c), 99), c["check_id"])
    )
    area_of = {id(c): _area(document, c) for c in checks}
    targets = list(dict.fromkeys(c["target"] for c in checks))
    summary = document["summary"]
    selection = selection_text(document)
    cards = {t["name"]: headline(t, summary.get(t["name"]), selection) for t in document["targets"]}
    counts = {
        t["name"]: Counter(token(c) for c in checks if c["target"] == t["name"])
        for t in document["targets"]
    }
    known = {
        name: [c for c in checks if c["target"] == name and c.get("known_issue")]
        for name in targets
    }
    by_requirement: dict[str, list[dict[str, Any]]] = {}
    for check in checks:
        for rid in check["requirements"]:
            by_requirement.setdefault(rid, []).append(check)
    style, script = _asset("report.css"), _asset("report.js")
    return _ENV.get_template("index.html.j2").render(
        doc=document,
        checks=checks,
        tokens=TOKENS,
        labels=LABELS,
        shown_by_default=SHOWN_BY_DEFAULT,
        all_counts=Counter(token(c) for c in checks),
        targets=targets,
        **_areas(checks, area_of, document),
        cards=cards,
        counts=counts,
        fails=card_fails(document, checks),
        card_fails=CARD_FAILS,
        known=known,
        selection=selection,
        baseline=document["run"].get("baseline"),
        by_requirement=by_requirement,
        rules={t: rule_tokens(checks, t) for t in targets},
        area=lambda check: area_of[id(check)],
        token=token,
        skip_why=skip_why,
        row_id=row_id,
        lazy_verdicts=LAZY_VERDICTS,
        lazy_blob=_lazy_blob(checks),
        style=style,
        script=script,
        csp=f"default-src 'none'; style-src '{_csp_hash(style)}'; "
        f"script-src '{_csp_hash(script)}'; img-src data:",
    )
