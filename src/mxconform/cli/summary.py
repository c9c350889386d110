"""The end of a run: one headline per target, the FAILs that count, the report and the exit
reason, in words (the terminal) or as JSON (`run --json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

import pytest

from mxconform.results import gating_failures, is_complete
from mxconform.spec.verdicts import DISPLAY_ORDER

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2

MAX_LISTED = 20


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def headline(
    name: str, s: dict[str, Any], target: dict[str, Any] | None, selection: str = ""
) -> str:
    """ "synapse-legacy: MUST met 105/107; SHOULD met 2/2; 2 known deviations (not failing)";
    of a partial run, "synapse-legacy: selection -k 'login': MUST met 5/5 of the selected"."""
    if target and target.get("start_error"):
        return (
            f"{name}: UNAVAILABLE: {target['start_error']} ({_plural(s['total'], 'check')} ERROR)"
        )
    if s.get("not_selected"):
        return f"{name}: not selected ({selection or 'the selection'} holds no check for it)"
    of = " of the selected" if selection else ""
    parts = [
        f"{lvl.upper()} met {s[f'{lvl}_passed']}/{s[f'{lvl}_applicable']}{of}"
        for lvl in ("must", "should")
        if s[f"{lvl}_applicable"]
    ] or ["nothing graded"]
    if s["known_fail"]:
        parts.append(f"{_plural(s['known_fail'], 'known deviation')} (not failing)")
    tail = f"; {_plural(s['total'], 'check')}: {verdict_counts(s)}"
    if target and target.get("startup_s") is not None:
        tail += f"; started in {target['startup_s']} s"
    lead = f"{name}: selection {selection}: " if selection else f"{name}: "
    return lead + "; ".join(parts) + tail


def verdict_counts(s: dict[str, Any]) -> str:
    """ "FAIL 2 KNOWN 1 PASS 150 SKIP 108 (not applicable 103, not tested 5)", in the one
    order every output uses (`DISPLAY_ORDER`); a known FAIL is not a failure."""
    shown = dict(s["counts"])
    shown["FAIL"] = shown.get("FAIL", 0) - s["known_fail"]
    shown["KNOWN"] = s["known_fail"]
    words = []
    for verdict in DISPLAY_ORDER:
        if not shown.get(verdict):
            continue
        words.append(f"{verdict} {shown[verdict]}")
        skipped = s.get("skipped") or {}
        if verdict == "SKIP" and any(skipped.values()):
            kinds = [f"{k.replace('_', ' ')} {n}" for k, n in skipped.items() if n]
            words[-1] += f" ({', '.join(kinds)})"
    return " ".join(words)


def _must_met(s: dict[str, Any]) -> bool:
    """Every applicable MUST met, known deviations excepted."""
    return bool(s["must_applicable"]) and s["must_passed"] + s["known_fail"] >= s["must_applicable"]


def selection_words(document: dict[str, Any]) -> str:
    """The selection's words when the run was partial, else ""."""
    if is_complete(document):
        return ""
    return str(document["run"]["selection"].get("text") or "a selection")


def summary_lines(
    document: dict[str, Any],
    report_dir: Path,
    wall_s: float,
    exit_code: int,
    reason: str,
    fail_on: str = "fail",
) -> list[str]:
    targets = {t["name"]: t for t in document["targets"]}
    total = len(document["checks"])
    lines = [
        "",
        f"mxconform: {_plural(total, 'check')} on {_plural(len(targets), 'target')}"
        f" in {wall_s:.1f} s",
    ]
    selection = selection_words(document)
    for name, s in document["summary"].items():
        lines.append("  " + headline(name, s, targets.get(name), selection))
        spent = (targets.get(name) or {}).get("operations")
        if spent:
            shown = ", ".join(f"{kind} {n}" for kind, n in spent.items())
            lines.append(f"    rate-limited operations: {shown}")
        for check_id in s["known_now_passing"]:
            lines.append(f"    known issue now passes, remove it from the file: {check_id}")
        for check_id in s.get("known_not_tried", []):
            lines.append(f"    known issue not tried this run (SKIP or ERROR): {check_id}")
    gating = gating_failures(document["checks"], fail_on)
    for c in gating[:MAX_LISTED]:
        transport = f" [{c['transport']}]" if c.get("transport") else ""
        lines.append(
            f"  {c['verdict']} {c['check_id']}{transport} ({c['target']}): "
            f"{' '.join(c['message'].split())[:200]}"
        )
    if len(gating) > MAX_LISTED:
        lines.append(f"  ... and {len(gating) - MAX_LISTED} more (see the report)")
    for t in document.get("targets", []):  # what cleanup could not do, not only on the page
        problems = (t.get("housekeeping") or {}).get("problems") or []
        for problem in problems[:MAX_LISTED]:
            lines.append(f"  {t['name']}: cleanup: {' '.join(str(problem).split())[:200]}")
    for name, housekeeping in left_behind(document).items():
        left = housekeeping["users_left_active"]
        lines.append(f"  {name}: {_plural(len(left), 'test account')} left ACTIVE on the server:")
        lines += [f"    {user_id}" for user_id in left[:MAX_LISTED]]
        for ledger in housekeeping.get("ledgers", []):
            lines.append(f"    finish with: mxconform cleanup {ledger}")
    lines.append(f"  report: {report_dir / 'index.html'}")
    lines.append(f"  exit {exit_code}: {reason or _all_met(document)}")
    return lines


def _all_met(document: dict[str, Any]) -> str:
    """What an exit 0 says: every MUST met, or, when the selection graded none, only that
    nothing failed (a run of SHOULDs or observations says nothing of the MUSTs); of a
    partial run, only of the selected checks."""
    selection = selection_words(document)
    if selection and any(s.get("must_applicable") for s in document["summary"].values()):
        return f"every selected MUST met ({selection}: a selection, not a conformance verdict)"
    if any(s.get("must_applicable") for s in document["summary"].values()):
        return "every MUST met (known deviations excepted)"
    return "no FAIL, but no MUST was graded: this selection does not say the server conforms"


def print_summary(lines: list[str], out: TextIO) -> None:
    print("\n".join(lines), file=out, flush=True)


def summary_json(
    document: dict[str, Any],
    report_dir: Path | None,
    wall_s: float,
    exit_code: int,
    reason: str,
    fail_on: str = "fail",
) -> str:
    """`run --json`: what the terminal summary says, for scripts."""
    targets = {t["name"]: t for t in document["targets"]}
    selection = selection_words(document)
    data = {
        "exit_code": exit_code,
        "exit_reason": reason or _all_met(document),
        # a partial run (-k, -m, --requirement) says nothing of conformance
        "complete": not selection,
        "selection": selection or None,
        "report": str(report_dir / "index.html") if report_dir else None,
        "results": str(report_dir / "results.json") if report_dir else None,
        "wall_s": round(wall_s, 2),
        "targets": {
            name: {
                "headline": headline(name, s, targets.get(name), selection),
                "conformant_on_must": _must_met(s)
                and not selection
                and not targets.get(name, {}).get("start_error"),
                "must_met_in_selection": _must_met(s) if selection else None,
                "start_error": targets.get(name, {}).get("start_error"),
                **s,
            }
            for name, s in document["summary"].items()
        },
        "failures": [
            {k: c[k] for k in ("check_id", "target", "transport", "verdict", "message")}
            for c in gating_failures(document["checks"], fail_on)
        ],
    }
    return json.dumps(data, indent=2)


def left_behind(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Targets on which the run left accounts active (cleanup refused, out of time or
    stopped), with their housekeeping."""
    return {
        t["name"]: t["housekeeping"]
        for t in document.get("targets", [])
        if (t.get("housekeeping") or {}).get("users_left_active")
    }


def exit_status(
    document: dict[str, Any], pytest_code: int, regressions: bool, fail_on: str = "fail"
) -> tuple[int, str]:
    """The run's exit code and, when it is not 0, why in one line."""
    checks = document["checks"]
    # --fail-on regression: only a change for the worse against --baseline fails the run
    gating = [] if fail_on == "regression" else gating_failures(checks, fail_on)
    if gating or regressions:
        kinds = sorted({c["verdict"] for c in gating})
        what = f"{len(gating)} {'/'.join(kinds)} not listed as known issues" if gating else ""
        against = (
            "regressions or lost coverage against the baseline"
            if fail_on == "lost-coverage"
            else "regressions"
        )
        return EXIT_FAIL, "; ".join(p for p in (what, against if regressions else "") if p)
    left = left_behind(document)
    if left:
        count = sum(len(h["users_left_active"]) for h in left.values())
        return EXIT_ERROR, (
            f"{_plural(count, 'test account')} left active on {', '.join(left)}: "
            "run `mxconform cleanup` with the ledger named above"
        )
    targets = document.get("targets") or []
    if targets and all(t.get("not_selected") for t in targets):
        return EXIT_ERROR, (
            f"the selection ({selection_words(document)}) holds no check that applies to "
            f"{', '.join(t['name'] for t in targets)}"
        )
    graded = [c for c in checks if c["verdict"] not in ("SKIP", "ERROR")]
    # An ERROR listed as a known issue (a setup step a release is known to break) is flagged
    # in the summary, not gating; any other ERROR means part of the run is not graded.
    errors = [c for c in checks if c["verdict"] == "ERROR" and not c.get("known_issue")]
    if not graded:
        return EXIT_ERROR, "nothing graded (every check was SKIP or ERROR)"
    if errors:
        setup = sum(1 for c in errors if str(c.get("message", "")).startswith("precondition"))
        parts = [f"{len(errors)} ERROR: checks not graded"]
        if setup:
            parts.append(f"{setup} a setup step the server answered unexpectedly")
        if len(errors) > setup:
            parts.append(f"{len(errors) - setup} the harness or the network failed")
        return EXIT_ERROR, "; ".join(parts)
    if pytest_code in (
        pytest.ExitCode.INTERRUPTED,
        pytest.ExitCode.INTERNAL_ERROR,
        pytest.ExitCode.USAGE_ERROR,
    ):
        return EXIT_ERROR, f"the run stopped early (pytest exit {pytest_code})"
    return EXIT_OK, ""
