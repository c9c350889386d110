"""results.json: the single source of truth of a run. Every other output is rendered from it."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mxconform.http.redact import SecretRegistry
from mxconform.spec import requirements
from mxconform.spec.coverage import coverage
from mxconform.spec.verdicts import Verdict

SCHEMA_VERSION = 1


@dataclass
class CheckRecord:
    check_id: str
    title: str
    requirements: list[str]
    target: str
    auth_api: str | None
    transport: str | None
    verdict: Verdict
    message: str
    expected: Any = None
    observed: Any = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    # The requirements the verdict rests on (see spec.verdicts.basis).
    basis: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    evidence: list[dict[str, Any]] = field(default_factory=list)
    nodeid: str = ""
    # Set when the target's known-issues file lists this check (expected to FAIL).
    known_issue: dict[str, str] | None = None
    # OAuth checks: what produced the check's tokens (the login driver's grant).
    grant: str | None = None

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.check_id, self.target, self.transport)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        return data


def record_key(check: dict[str, Any]) -> str:
    """`check_id[transport]` of a stored check, as plugin.checks.check_key names a live one."""
    return f"{check['check_id']}[{check.get('transport') or '-'}]"


def gating_failures(checks: list[dict[str, Any]], fail_on: str = "fail") -> list[dict[str, Any]]:
    """The verdicts that fail a run: FAILs (and WARNs with `fail_on="warn"`) not listed as
    known issues of their target."""
    gating = ("FAIL", "WARN") if fail_on == "warn" else ("FAIL",)
    return [c for c in checks if c["verdict"] in gating and not c.get("known_issue")]


def summarise(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per target: counts per verdict, and MUST / SHOULD compliance (met / applicable).

    A check counts towards the level of its first (primary) requirement; SKIP and ERROR
    checks are not applicable, so they count towards neither side.
    """
    cat = requirements.catalogue()
    out: dict[str, dict[str, Any]] = {}
    for target in dict.fromkeys(c["target"] for c in checks):
        mine = [c for c in checks if c["target"] == target]
        counts = Counter(c["verdict"] for c in mine)
        known = [c for c in mine if c.get("known_issue")]
        entry: dict[str, Any] = {
            "counts": {v.value: counts.get(v.value, 0) for v in Verdict},
            "total": len(mine),
            "known_fail": sum(1 for c in known if c["verdict"] == "FAIL"),
            "known_now_passing": sorted(c["check_id"] for c in known if c["verdict"] == "PASS"),
            # A known FAIL that now SKIPs or ERRORs was not shown fixed: it was not tried.
            "known_not_tried": sorted(
                c["check_id"] for c in known if c["verdict"] in ("SKIP", "ERROR")
            ),
            "graded": sum(1 for c in mine if c["verdict"] not in ("SKIP", "ERROR")),
        }
        for level, broken in (("must", "FAIL"), ("should", "WARN")):
            graded = [
                c
                for c in mine
                if c["verdict"] not in ("SKIP", "ERROR")
                and cat[c["requirements"][0]].level == level.upper()
            ]
            entry[f"{level}_applicable"] = len(graded)
            entry[f"{level}_passed"] = sum(1 for c in graded if c["verdict"] != broken)
        out[target] = entry
    return out


def cited_requirements(
    checks: list[dict[str, Any]], targets: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The rules the run cites, each linked to the latest spec and, per target, to the spec
    version that target was held to."""
    cat = requirements.catalogue()
    ids = sorted({rid for c in checks for rid in c["requirements"]})
    versions = {
        t["name"]: requirements.parse_version(t.get("spec_version_evaluated") or "")
        for t in targets
    }
    return {
        rid: {
            "level": cat[rid].level,
            "area": cat[rid].area,
            "statement": cat[rid].statement,
            "since": cat[rid].since,
            "until": cat[rid].until,
            "url": cat[rid].url(None),
            "url_by_target": {name: cat[rid].url(v) for name, v in versions.items()},
        }
        for rid in ids
        if rid in cat
    }


def build_document(
    *,
    harness: dict[str, Any],
    run: dict[str, Any],
    targets: list[dict[str, Any]],
    records: list[CheckRecord],
    secrets: SecretRegistry,
    cited: set[str] | None = None,
) -> dict[str, Any]:
    checks = [r.to_json() for r in records]
    document = {
        "schema_version": SCHEMA_VERSION,
        "harness": harness,
        "run": run,
        "targets": targets,
        "summary": summarise(checks),
        "requirements": cited_requirements(checks, targets),
        "uncovered_requirements": sorted(
            set(requirements.catalogue()) - {rid for c in checks for rid in c["requirements"]}
        ),
        # The suites' coverage of the catalogue (every collected check, `-k` or not).
        "coverage": coverage(cited if cited is not None else _cited_by(checks)),
        "checks": checks,
    }
    # Last line of defence: scrub every string by value before anything is written.
    scrubbed: dict[str, Any] = secrets.scrub_any(document)
    return scrubbed


def _cited_by(checks: list[dict[str, Any]]) -> set[str]:
    return {rid for c in checks for rid in c["requirements"]} | {
        rid for c in checks for rid in c.get("basis", [])
    }


def write_document(document: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")


# A surrogate as JSON writes it, lone or half of a pair: then the strings are looked at.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def read_document(path: Path) -> dict[str, Any]:
    """The document, each string writable: one written before the scrub made them so may hold
    lone surrogates (`"\\ud800"`), which every UTF-8 renderer would raise on."""
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a results.json (not JSON: {exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a results.json (not a JSON object)")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: unsupported results schema_version {data.get('schema_version')}")
    if _SURROGATE_ESCAPE.search(text):
        # with no secret registered, a scrub only makes each string (and key) writable
        cleaned: dict[str, Any] = SecretRegistry().scrub_any(data)
        return cleaned
    return data
