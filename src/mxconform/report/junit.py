"""JUnit XML for CI dashboards: FAIL is a failure, ERROR an error, SKIP and a known issue
skipped; WARN/INFO pass. Each case is named by its check id and transport."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

# Characters XML 1.0 forbids even escaped: a server's errcode or message may hold them.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


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
    for target in dict.fromkeys(c["target"] for c in document["checks"]):
        if only_target is not None and target != only_target:
            continue
        checks = [c for c in document["checks"] if c["target"] == target]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"mxconform.{target}",
            time=f"{sum(c['duration_s'] for c in checks):.3f}",
        )
        for check in checks:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{target}.{check['check_id']}",
                name=_name(check),
                time=f"{check['duration_s']:.3f}",
            )
            props = ET.SubElement(case, "properties")
            for rid in check["requirements"]:
                ET.SubElement(props, "property", name="requirement", value=rid)
            ET.SubElement(props, "property", name="verdict", value=check["verdict"])
            verdict = check["verdict"]
            if verdict == "FAIL" and check.get("known_issue"):
                known = check["known_issue"]
                ET.SubElement(case, "skipped", message=f"known issue: {known['reason'][:400]}")
            elif verdict == "FAIL":
                ET.SubElement(case, "failure", message=check["message"][:500]).text = check[
                    "message"
                ]
            elif verdict == "ERROR":
                ET.SubElement(case, "error", message=check["message"][:500]).text = check["message"]
            elif verdict == "SKIP":
                ET.SubElement(case, "skipped", message=check["message"][:500])
            elif verdict in ("WARN", "INFO"):
                ET.SubElement(case, "system-out").text = f"{verdict}: {check['message']}"
        _count(suite, suite.findall("testcase"))
    _count(suites, suites.findall("testsuite/testcase"))
    _sanitise(suites)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
