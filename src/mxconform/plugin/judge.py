"""Judging: how a finished check's outcome becomes one verdict."""

from collections.abc import Generator
from typing import Any, Literal

import httpx
import pytest

from mxconform.errors import (
    NOT_TESTED,
    HarnessError,
    PreconditionFailed,
    TargetUnavailable,
    Unsupported,
)
from mxconform.plugin.checks import CHECK_MARKER
from mxconform.plugin.options import brief
from mxconform.plugin.record import record_check
from mxconform.plugin.state import get_run, has_run
from mxconform.spec.verdicts import CheckState, Unmet, Verdict


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
    call: pytest.CallInfo[None],
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if item.get_closest_marker(CHECK_MARKER) is None or not has_run(item.config):
        return report
    run = get_run(item.config)
    active = run.active
    if active is None or active.recorded:
        return report
    if call.when == "call" or report.outcome != "passed":
        verdict, message, finding = _judge(active.state, call, report)
        record_check(run, active, item, verdict, message, finding, report.duration)
        report.mxconform_verdict = verdict.value  # type: ignore[attr-defined]
        record = run.records[-1]
        report.mxconform_check = {  # type: ignore[attr-defined]
            "check_id": record.check_id,
            "target": record.target,
            "transport": record.transport,
            "verdict": verdict.value,
            "known": record.known_issue is not None,
            "message": run.secrets.scrub(message),
        }
        outcomes: dict[Verdict, Literal["passed", "failed", "skipped"]] = {
            Verdict.FAIL: "failed",
            Verdict.ERROR: "failed",
            Verdict.SKIP: "skipped",
        }
        report.outcome = outcomes.get(verdict, "passed")
        if verdict in (Verdict.PASS, Verdict.WARN, Verdict.INFO):
            report.longrepr = None
        elif verdict is Verdict.SKIP:  # as pytest's own skips are: (path, line, reason)
            path, line, _ = item.location
            report.longrepr = (path, (line or 0) + 1, f"Skipped: {run.secrets.scrub(message)}")
        elif brief(item.config):
            # One line, our words: pytest's tracebacks show argument values (tokens,
            # passwords); `--tb=short|long` brings them back for debugging.
            shown = run.secrets.scrub(message)
            report.longrepr = f"{verdict.value} {active.state.check_id}: {shown}"
    return report


def _judge(
    state: CheckState,
    call: pytest.CallInfo[None],
    report: pytest.TestReport,
) -> tuple[Verdict, str, dict[str, Any] | None]:
    excinfo = call.excinfo
    if report.skipped:  # pytest's own skip (a mark, a plugin): not tested, by the harness
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        return Verdict.SKIP, str(reason).removeprefix("Skipped: "), _skip(NOT_TESTED, "capability")
    if excinfo is None:
        verdict = state.verdict()
        messages = [f.message for f in state.findings] + state.observations + state.notes
        return verdict, "; ".join(messages) or "as required", None
    exc = excinfo.value
    if isinstance(exc, Unsupported):  # NotApplicable included: its kind says which
        return Verdict.SKIP, str(exc), _skip(exc.kind, exc.why)
    if isinstance(exc, PreconditionFailed | TargetUnavailable):
        return Verdict.ERROR, str(exc), None
    if isinstance(exc, Unmet):  # only the request under test is judged by expectations
        f = exc.finding
        return (
            Verdict.FAIL,
            f.message,
            {"requirement": f.requirement, "expected": f.expected, "observed": f.observed},
        )
    # Anything else, a bare assertion included, is the harness's problem: never a FAIL.
    where = "setting up" if call.when == "setup" else "running"
    kind = "harness or network" if isinstance(exc, HarnessError | httpx.HTTPError) else "harness"
    return Verdict.ERROR, f"{kind} error while {where} the check: {type(exc).__name__}: {exc}", None


def _skip(kind: str, why: str) -> dict[str, Any]:
    return {"skip": {"kind": kind, "why": why}}


def pytest_report_teststatus(
    report: pytest.TestReport,
    config: pytest.Config,
) -> tuple[str, str, str] | None:
    verdict = getattr(report, "mxconform_verdict", None)
    if verdict in ("WARN", "INFO"):
        return verdict.lower(), verdict[0], verdict
    if verdict == "ERROR":
        return "error", "E", "ERROR"
    return None
