"""Run to run: what changed between two results.json files, keyed by our stable check ids.

Lost coverage is its own category: a check that was graded (PASS, FAIL, WARN, INFO) and now
is SKIP or ERROR, or is missing while its target still ran; a target missing altogether is one
line, not one per check. `combine` makes one document of several (a matrix of runs, one per
target or more), so two matrices compare target by target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str, str | None]  # check id, target, transport
UNGRADED = ("SKIP", "ERROR")


def _index(document: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    return {(c["check_id"], c["target"], c.get("transport")): c for c in document["checks"]}


def _targets(document: dict[str, Any]) -> set[str]:
    named = {t["name"] for t in document.get("targets", [])}
    return named | {c["target"] for c in document["checks"]}


@dataclass
class Diff:
    regressions: list[Key] = field(default_factory=list)  # now FAIL (not a known issue), not before
    fixed: list[Key] = field(default_factory=list)  # FAIL before, PASS now
    still_failing: list[Key] = field(default_factory=list)
    # graded before; now SKIP / ERROR ("absent" when the check is missing)
    lost_coverage: list[tuple[Key, str, str]] = field(default_factory=list)
    missing_targets: list[tuple[str, int]] = field(default_factory=list)  # target, checks before
    new_targets: list[tuple[str, int]] = field(default_factory=list)
    changed: list[tuple[Key, str, str]] = field(default_factory=list)  # other verdict changes
    added: list[Key] = field(default_factory=list)
    removed: list[Key] = field(default_factory=list)  # missing, and not graded before


def diff_results(old: dict[str, Any], new: dict[str, Any]) -> Diff:
    before, after = _index(old), _index(new)
    out = Diff()
    gone = _targets(old) - _targets(new)
    arrived = _targets(new) - _targets(old)
    out.missing_targets = [(t, sum(1 for k in before if k[1] == t)) for t in sorted(gone)]
    out.new_targets = [(t, sum(1 for k in after if k[1] == t)) for t in sorted(arrived)]
    for key in sorted(after.keys() - before.keys(), key=str):
        if key[1] not in arrived:
            out.added.append(key)
        if after[key]["verdict"] == "FAIL" and not after[key].get("known_issue"):
            out.regressions.append(key)
    for key in sorted(before.keys() - after.keys(), key=str):
        if key[1] in gone:
            continue
        was = before[key]["verdict"]
        if was in UNGRADED:
            out.removed.append(key)
        else:
            out.lost_coverage.append((key, was, "absent"))
    for key in sorted(before.keys() & after.keys(), key=str):
        was, now = before[key]["verdict"], after[key]["verdict"]
        if now == "FAIL" and was != "FAIL" and not after[key].get("known_issue"):
            out.regressions.append(key)
        elif was == "FAIL" and now == "PASS":
            out.fixed.append(key)
        elif was == now == "FAIL":
            out.still_failing.append(key)
        elif now in UNGRADED and was not in UNGRADED:
            out.lost_coverage.append((key, was, now))
        elif was != now:
            out.changed.append((key, was, now))
    out.regressions.sort(key=str)
    out.lost_coverage.sort(key=lambda item: str(item[0]))
    return out


def lost_coverage(d: Diff) -> bool:
    """Whether a check graded before is not graded now: SKIP, ERROR or absent, its target's
    whole run included (`--fail-on lost-coverage` gates on it: a suite or a target quietly
    going ungraded is otherwise an exit 0)."""
    return bool(d.lost_coverage) or any(checks for _, checks in d.missing_targets)


def combine(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One document's checks and targets from several runs; where two runs have the same
    target, the later run's (by `started_at`) stands for it."""
    latest: dict[str, dict[str, Any]] = {}
    for document in sorted(documents, key=lambda d: str(d["run"]["started_at"])):
        for name in _targets(document):
            latest[name] = document
    return {
        "targets": [
            t for name, d in sorted(latest.items()) for t in d["targets"] if t["name"] == name
        ],
        "checks": [
            c for name, d in sorted(latest.items()) for c in d["checks"] if c["target"] == name
        ],
    }


def _show(key: Key) -> str:
    check_id, target, transport = key
    return f"{target}: {check_id}" + (f" [{transport}]" if transport else "")


def render_diff(d: Diff) -> str:
    lines = []
    sections: list[tuple[str, list[str]]] = [
        ("regressions (new FAIL)", [_show(k) for k in d.regressions]),
        (
            "lost coverage (graded before, now SKIP, ERROR or absent)",
            [f"{_show(k)}: {a} -> {b}" for k, a, b in d.lost_coverage],
        ),
        (
            "missing targets (in the older run only)",
            [f"{t}: all {n} checks absent" for t, n in d.missing_targets],
        ),
        ("fixed", [_show(k) for k in d.fixed]),
        ("still failing", [_show(k) for k in d.still_failing]),
        ("changed verdicts", [f"{_show(k)}: {a} -> {b}" for k, a, b in d.changed]),
        ("new targets", [f"{t}: {n} checks" for t, n in d.new_targets]),
        ("added checks", [_show(k) for k in d.added]),
        ("removed checks (not graded before)", [_show(k) for k in d.removed]),
    ]
    for title, items in sections:
        lines.append(f"{title}: {len(items)}")
        lines.extend(f"  {item}" for item in items)
    return "\n".join(lines)
