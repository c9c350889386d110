"""Run to run: what changed between two results.json files, keyed by our stable check ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str, str | None]  # check id, target, transport


def _index(document: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    return {(c["check_id"], c["target"], c.get("transport")): c for c in document["checks"]}


@dataclass
class Diff:
    regressions: list[Key] = field(default_factory=list)  # now FAIL (not a known issue), not before
    fixed: list[Key] = field(default_factory=list)  # FAIL before, PASS now
    still_failing: list[Key] = field(default_factory=list)
    changed: list[tuple[Key, str, str]] = field(default_factory=list)  # other verdict changes
    added: list[Key] = field(default_factory=list)
    removed: list[Key] = field(default_factory=list)


def diff_results(old: dict[str, Any], new: dict[str, Any]) -> Diff:
    before, after = _index(old), _index(new)
    out = Diff()
    for key in sorted(after.keys() - before.keys(), key=str):
        out.added.append(key)
        if after[key]["verdict"] == "FAIL" and not after[key].get("known_issue"):
            out.regressions.append(key)
    out.removed = sorted(before.keys() - after.keys(), key=str)
    for key in sorted(before.keys() & after.keys(), key=str):
        was, now = before[key]["verdict"], after[key]["verdict"]
        if now == "FAIL" and was != "FAIL" and not after[key].get("known_issue"):
            out.regressions.append(key)
        elif was == "FAIL" and now == "PASS":
            out.fixed.append(key)
        elif was == now == "FAIL":
            out.still_failing.append(key)
        elif was != now:
            out.changed.append((key, was, now))
    out.regressions.sort(key=str)
    return out


def _show(key: Key) -> str:
    check_id, target, transport = key
    return f"{target}: {check_id}" + (f" [{transport}]" if transport else "")


def render_diff(d: Diff) -> str:
    lines = []
    sections: list[tuple[str, list[str]]] = [
        ("regressions (new FAIL)", [_show(k) for k in d.regressions]),
        ("fixed", [_show(k) for k in d.fixed]),
        ("still failing", [_show(k) for k in d.still_failing]),
        ("changed verdicts", [f"{_show(k)}: {a} -> {b}" for k, a, b in d.changed]),
        ("added checks", [_show(k) for k in d.added]),
        ("removed checks", [_show(k) for k in d.removed]),
    ]
    for title, items in sections:
        lines.append(f"{title}: {len(items)}")
        lines.extend(f"  {item}" for item in items)
    return "\n".join(lines)
