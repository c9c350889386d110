"""JUnit XML for CI dashboards, from results.json alone.

One `<testsuite>` per target, one `<testcase>` per check: classname `<target>.<area>` (the
spec area of its first rule, so a dashboard groups checks by area instead of showing one
class per check), name `check_id[transport]`, `file` the suite module it comes from. FAIL is
a `<failure>` and ERROR an `<error>`, each body saying what a reader needs without opening
results.json: the message, expected and observed, the rules with their spec links, and the
check's row in `index.html` (beside the JUnit file). A not-applicable SKIP is no case at all:
the rule does not apply, so listing it would only pad the totals; it is counted in the
suite's properties instead. A not-tested SKIP is `<skipped type="not_tested">`, a known FAIL
`<skipped type="known-issue">`. WARN and INFO pass, with a `<system-out>`.

A target the selection left out (`not_selected`) gets an empty suite with the property
`not_selected=true`, so a dashboard sees it was not run rather than that it vanished.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any
from urllib.parse import quote

from mxconform.results import NOT_APPLICABLE, NOT_TESTED, is_complete, skip_kind

from .html import row_id, skip_why

# Characters XML 1.0 forbids even escaped: a server's errcode or message may hold them.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# The `<skipped type>` of a known FAIL. pytest's junitxml writes "pytest.xfail" for its own
# expected failures; ours names what it is (listed in the target's known-issues file), which
# is what a dashboard grouping skips by type should show, not a pytest mechanism.
KNOWN_ISSUE_TYPE = "known-issue"
# The attribute `message` is the short form; the element's text holds everything.
_MESSAGE_CHARS = 500


def xml_safe(text: str) -> str:
    """Text a JUnit parser accepts: each character XML 1.0 forbids becomes U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def _sanitise(root: ET.Element) -> None:
    for element in root.iter():
        if element.text:
            element.text = xml_safe(element.text)
        if element.tail:
            element.tail = xml_safe(element.tail)
        for key, value in element.attrib.items():
            element.attrib[key] = xml_safe(value)


def _name(check: dict[str, Any]) -> str:
    suffix = f"[{check['transport']}]" if check.get("transport") else ""
    return f"{check['check_id']}{suffix}"


def _area(document: dict[str, Any], check: dict[str, Any]) -> str:
    """The spec area of the check's first rule, as the page's area filter has it."""
    first = (check.get("requirements") or [None])[0]
    return str(document.get("requirements", {}).get(first, {}).get("area") or "other")


def anchor(check: dict[str, Any]) -> str:
    """The check's row in index.html, by the id the page gives it (`html.row_id`). The page's
    script takes a fragment without `=` for a row id: it shows that row (even one its default
    filter hides) and scrolls to it."""
    return "index.html#" + quote(row_id(check), safe="-._~")


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _short(message: str) -> str:
    return (message.strip().splitlines() or [""])[0][:_MESSAGE_CHARS]


def _body(document: dict[str, Any], check: dict[str, Any], rules: list[str], *head: str) -> str:
    """The full text of a case's result: what was wrong, against which rules (each linked to
    the spec version the target is held to), and where the report shows its evidence."""
    lines = [*head, check.get("message") or ""]
    if check.get("expected") is not None or check.get("observed") is not None:
        lines += [f"expected: {_pretty(check.get('expected'))}"]
        lines += [f"observed: {_pretty(check.get('observed'))}"]
    cited = document.get("requirements", {})
    for rid in rules:
        req = cited.get(rid, {})
        url = (req.get("url_by_target") or {}).get(check["target"]) or req.get("url") or ""
        level = f" ({req['level']})" if req.get("level") else ""
        lines.append(f"rule {rid}{level}: {url or 'no spec link'}")
    lines.append(f"report: {anchor(check)}")
    return "\n".join(lines)


def _result(case: ET.Element, document: dict[str, Any], check: dict[str, Any]) -> None:
    verdict, message = check["verdict"], check.get("message") or ""
    judged = list(check.get("basis") or check["requirements"])
    if verdict == "FAIL" and check.get("known_issue"):
        reason, link = check["known_issue"].get("reason") or "", check["known_issue"].get("link")
        head = [f"known issue: {reason}", *([f"known issue link: {link}"] if link else [])]
        body = _body(document, check, judged, *head)
        short = f"known issue: {_short(reason)}"[:_MESSAGE_CHARS]
        ET.SubElement(case, "skipped", message=short, type=KNOWN_ISSUE_TYPE).text = body
    elif verdict == "FAIL":
        body = _body(document, check, judged)
        ET.SubElement(case, "failure", message=_short(message)).text = body
    elif verdict == "ERROR":  # judged no rule: the ones it cites
        body = _body(document, check, list(check["requirements"]))
        ET.SubElement(case, "error", message=_short(message)).text = body
    elif verdict == "SKIP":
        kind, why = skip_kind(check) or (NOT_TESTED, "capability")
        text = f"{kind} ({why}): {skip_why(check) or why}\n{message}"
        ET.SubElement(case, "skipped", message=_short(message), type=kind).text = text
    elif verdict in ("WARN", "INFO"):
        out = ET.SubElement(case, "system-out")
        out.text = f"{verdict}: " + _body(document, check, judged)


def _case(suite: ET.Element, document: dict[str, Any], check: dict[str, Any]) -> None:
    attrs = {
        "classname": f"{check['target']}.{_area(document, check)}",
        "name": _name(check),
        "time": f"{check['duration_s']:.3f}",
    }
    if check.get("nodeid"):
        attrs["file"] = str(check["nodeid"]).split("::", 1)[0]
    case = ET.SubElement(suite, "testcase", attrs)
    props = ET.SubElement(case, "properties")
    for rid in check["requirements"]:
        ET.SubElement(props, "property", name="requirement", value=rid)
    ET.SubElement(props, "property", name="verdict", value=check["verdict"])
    _result(case, document, check)


def _not_applicable(check: dict[str, Any]) -> bool:
    return (skip_kind(check) or ("",))[0] == NOT_APPLICABLE


def _properties(
    suite: ET.Element, document: dict[str, Any], checks: list[dict[str, Any]], left_out: bool
) -> None:
    """What the cases cannot say: whether the run was partial or left this target out, and
    the not-applicable checks left out (in all, and per why that occurs), so a dashboard
    can tell a partial run and explain its totals."""
    selection = document.get("run", {}).get("selection") or {}
    props = ET.SubElement(suite, "properties")
    values = {"complete": str(is_complete(document)).lower(), "selection": selection.get("text")}
    values["not_selected"] = str(left_out).lower()
    whys = Counter((skip_kind(c) or ("", ""))[1] for c in checks if _not_applicable(c))
    values[NOT_APPLICABLE] = str(sum(whys.values()))
    values |= {f"{NOT_APPLICABLE}.{why}": str(n) for why, n in sorted(whys.items())}
    for name, value in values.items():
        ET.SubElement(props, "property", name=name, value=value or "")


def _count(element: ET.Element, cases: list[ET.Element]) -> None:
    """tests, failures, errors and skipped as the elements say (a known issue is a
    `<skipped>`), so a dashboard's totals agree with the cases it lists."""
    kinds = Counter(child.tag for case in cases for child in case)
    element.set("tests", str(len(cases)))
    element.set("failures", str(kinds["failure"]))
    element.set("errors", str(kinds["error"]))
    element.set("skipped", str(kinds["skipped"]))


def render_junit(document: dict[str, Any], only_target: str | None = None) -> str:
    """All targets in one file, or one target's checks (`junit-<target>.xml`)."""
    suites = ET.Element("testsuites", name="mxconform")
    left_out = {t["name"] for t in document.get("targets", []) if t.get("not_selected")}
    names = [c["target"] for c in document["checks"]] + sorted(left_out)
    for target in dict.fromkeys(names):
        if only_target is not None and target != only_target:
            continue
        checks = [c for c in document["checks"] if c["target"] == target]
        listed = [c for c in checks if not _not_applicable(c)]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"mxconform.{target}",
            time=f"{sum(c['duration_s'] for c in listed):.3f}",  # the cases' own, summed
        )
        _properties(suite, document, checks, left_out=target in left_out and not checks)
        for check in listed:
            _case(suite, document, check)
        _count(suite, suite.findall("testcase"))
    _count(suites, suites.findall("testsuite/testcase"))
    _sanitise(suites)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
