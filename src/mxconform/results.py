"""results.json: the single source of truth of a run. Every other output is rendered from it."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# the kinds and texts of a SKIP, for the reports (which read only this module's document)
from mxconform.errors import NOT_APPLICABLE as NOT_APPLICABLE
from mxconform.errors import NOT_TESTED as NOT_TESTED
from mxconform.errors import SKIP_WHYS as SKIP_WHYS
from mxconform.http.redact import SecretRegistry
from mxconform.spec import requirements
from mxconform.spec.coverage import coverage
from mxconform.spec.verdicts import VERDICT_ORDER, Verdict

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
    # SKIP only: {"kind": "not_applicable" | "not_tested", "why": ...} (errors.SKIP_WHYS).
    skip: dict[str, str] | None = None

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


def skip_kind(check: dict[str, Any]) -> tuple[str, str] | None:
    """A SKIP's (kind, why); a SKIP recorded before kinds were (no `skip`) was not tested."""
    if check["verdict"] != "SKIP":
        return None
    given = check.get("skip") or {}
    return str(given.get("kind") or NOT_TESTED), str(given.get("why") or "capability")


def summarise(
    checks: list[dict[str, Any]], targets: list[dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Per target: counts per verdict, SKIPs by kind, and MUST / SHOULD compliance (met /
    applicable); a target the selection left nothing to run says so (`not_selected`).

    A check counts towards the level of its first (primary) requirement; SKIP and ERROR
    checks are not applicable, so they count towards neither side.
    """
    cat = requirements.catalogue()
    names = [t["name"] for t in targets or []]
    not_selected = {t["name"] for t in targets or [] if t.get("not_selected")}
    out: dict[str, dict[str, Any]] = {}
    for target in dict.fromkeys([*(c["target"] for c in checks), *names]):
        mine = [c for c in checks if c["target"] == target]
        counts = Counter(c["verdict"] for c in mine)
        known = [c for c in mine if c.get("known_issue")]
        kinds = [k for k in map(skip_kind, mine) if k is not None]
        entry: dict[str, Any] = {
            "counts": {v.value: counts.get(v.value, 0) for v in Verdict},
            "total": len(mine),
            "not_selected": target in not_selected,
            "skipped": {kind: sum(1 for k, _ in kinds if k == kind) for kind in SKIP_WHYS},
            "skipped_why": dict(Counter(f"{k}.{why}" for k, why in kinds)),
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


def is_complete(document: dict[str, Any]) -> bool:
    """Whether the run ran every check (no `-k`, `-m` or `--requirement`): only then can a
    result say a server conforms."""
    return bool((document.get("run", {}).get("selection") or {}).get("complete", True))


# Worst first: what a rule's checks say of it, where they judged it.
_RULE_RANK = {v.value: i for i, v in enumerate(VERDICT_ORDER)}


def judged_rules(check: dict[str, Any]) -> list[str]:
    """The rules this check's verdict speaks for: its basis (the broken rules of a FAIL or
    WARN, the silent ones of an INFO, every cited rule of a PASS). A rule a FAIL also cites
    but did not break was observed, not failed; SKIP and ERROR judge no rule, so a record
    without a basis (an older document) falls back to its cited rules only for those."""
    if "basis" in check and check["verdict"] not in ("SKIP", "ERROR"):
        return list(check["basis"])
    return list(check["requirements"])


def rule_verdicts(checks: list[dict[str, Any]], target: str) -> dict[str, dict[str, Any]]:
    """Per rule `target`'s checks cite: the worst verdict of the checks that judged it
    (`judged_rules`; "OBSERVED" when every citing check judged other rules), whether each
    FAIL of it is a known issue, and how many checks cite it. The page, the matrix and
    results.json count failed rules with this one function."""
    out: dict[str, dict[str, Any]] = {}
    for c in checks:
        if c["target"] != target:
            continue
        judged = set(judged_rules(c))
        for rid in dict.fromkeys([*c["requirements"], *judged]):
            entry = out.setdefault(rid, {"verdict": "OBSERVED", "known": True, "checks": 0})
            entry["checks"] += 1
            if rid not in judged:
                continue
            verdict = c["verdict"]
            if verdict == "FAIL":
                entry["known"] = entry["known"] and bool(c.get("known_issue"))
            if entry["verdict"] == "OBSERVED" or _RULE_RANK[verdict] < _RULE_RANK[entry["verdict"]]:
                entry["verdict"] = verdict
    for entry in out.values():
        entry["known"] = entry["verdict"] == "FAIL" and entry["known"]
    return out


def cited_requirements(
    checks: list[dict[str, Any]],
    targets: list[dict[str, Any]],
    cited: set[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The rules the run cites (its checks' markers, the rules their verdicts rest on, and
    with `cited` every row the suites cite, a literal `req=` inside a check included), each
    linked to the latest spec and, per target, to the spec version that target was held to,
    with what that target's checks said of it (`rule_verdicts`)."""
    cat = requirements.catalogue()
    ids = sorted(_cited_by(checks) | (cited or set()))
    versions = {
        t["name"]: requirements.parse_version(t.get("spec_version_evaluated") or "")
        for t in targets
    }
    by_target = {name: rule_verdicts(checks, name) for name in versions}
    return {
        rid: {
            "level": cat[rid].level,
            # "interop": a rule of another standard clients rely on (OpenID Connect), graded
            # as an interoperability finding (INFO), never as a Matrix MUST
            "basis": cat[rid].basis,
            "area": cat[rid].area,
            "statement": cat[rid].statement,
            "since": cat[rid].since,
            "until": cat[rid].until,
            "url": cat[rid].url(None),
            "url_by_target": {name: cat[rid].url(v) for name, v in versions.items()},
            "verdict_by_target": {
                name: rules[rid]["verdict"] for name, rules in by_target.items() if rid in rules
            },
        }
        for rid in ids
        if rid in cat
    }


def coverage_parts(checks: list[dict[str, Any]], cited: set[str]) -> dict[str, Any]:
    """The document's coverage, one computation for results.json, the page and `mxconform
    requirements`: the catalogue's rows by kind (`spec.coverage`, literal citations counted)
    and, of the rows the suites check, those no check of this run cited (a selection)."""
    every = cited | _cited_by(checks)
    parts = coverage(every)
    return {
        "uncovered_requirements": parts["uncovered"],
        "not_run_requirements": sorted(
            rid for rid in every - _cited_by(checks) if rid in requirements.catalogue()
        ),
        "coverage": parts,
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
    given = cited if cited is not None else _cited_by(checks)
    document = {
        "schema_version": SCHEMA_VERSION,
        "harness": harness,
        "run": run,
        "targets": targets,
        "summary": summarise(checks, targets),
        "requirements": cited_requirements(checks, targets, given),
        # The suites' coverage of the catalogue (every collected check, `-k` or not).
        **coverage_parts(checks, given),
        "checks": checks,
    }
    # Last line of defence: scrub every string by value before anything is written.
    scrubbed: dict[str, Any] = secrets.scrub_any(document)
    return scrubbed


def _cited_by(checks: list[dict[str, Any]]) -> set[str]:
    return (
        {rid for c in checks for rid in c["requirements"]}
        | {rid for c in checks for rid in c.get("basis", [])}
        | {f["requirement"] for c in checks for f in c.get("findings", []) if "requirement" in f}
    )


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
