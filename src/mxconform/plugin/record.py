"""Recording: one record per check, then results.json and its renderings at the end."""

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mxconform import __version__
from mxconform.paths import command_line, git_commit
from mxconform.plugin.options import INTERRUPT_KEY
from mxconform.plugin.state import (
    REPORT_KEY,
    SELECTION_KEY,
    ActiveCheck,
    Run,
    TargetState,
    get_run,
    has_run,
    report_dir,
)
from mxconform.plugin.targets import stop_all
from mxconform.results import CheckRecord, build_document, write_document
from mxconform.spec.verdicts import Verdict, basis


def record_check(
    run: Run,
    active: ActiveCheck,
    item: pytest.Item,
    verdict: Verdict,
    message: str,
    finding: dict[str, Any] | None,
    duration_s: float,
) -> None:
    state = active.state
    findings = [
        {
            "requirement": f.requirement,
            "verdict": f.verdict.value,
            "message": f.message,
            "expected": f.expected,
            "observed": f.observed,
        }
        for f in state.findings
    ]
    record = CheckRecord(
        check_id=state.check_id,
        title=active.title,
        requirements=state.requirement_ids,
        target=active.target,
        auth_api=active.auth_api,
        transport=active.transport,
        verdict=verdict,
        message=message,
        expected=(finding or {}).get("expected"),
        observed=(finding or {}).get("observed"),
        findings=findings,
        observations=list(state.observations),
        basis=basis(state, verdict)
        if verdict is not Verdict.FAIL or finding is None
        else [finding["requirement"]],
        duration_s=round(duration_s, 4),
        evidence=[e.to_json() for e in active.recorder.exchanges],
        nodeid=item.nodeid,
        grant=active.grant,
        skip=(finding or {}).get("skip") if verdict is Verdict.SKIP else None,
    )
    if active.target in run.states:
        for known in run.state(active.target).known_issues:
            if known.covers(state.check_id, active.transport):
                record.known_issue = {"reason": known.reason, "link": known.link}
    run.records.append(record)
    active.recorded = True


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not has_run(session.config):
        return
    run = get_run(session.config)
    stop_all(run)  # after the session fixtures' cleanup, before the report reads the logs
    if not run.records and not run.not_selected:
        return
    from mxconform.report import render_all

    order = session.config.stash.get(SELECTION_KEY, {})
    run.records.sort(key=lambda r: order.get(r.nodeid, len(order)))  # stable: as selected
    out = report_dir(run)
    finished = datetime.now(UTC)
    interrupted = session.config.stash.get(INTERRUPT_KEY, None) or (
        "SIGINT" if exitstatus == pytest.ExitCode.INTERRUPTED else None
    )
    document = build_document(
        harness={"name": "mxconform", "version": __version__, "git_commit": git_commit()},
        run={
            "started_at": run.started_at.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "duration_s": round((finished - run.started_at).total_seconds(), 2),
            "command": command_line(),
            "servers_file": str(run.servers_path),
            # servers files hold only ${ENV} references, so hashing the file leaks no secret
            "servers_file_sha256": hashlib.sha256(run.servers_path.read_bytes()).hexdigest(),
            "hypothesis_seed": run.hypothesis_seed,  # replay: --hypothesis-seed
            "spec_version_override": run.spec_override,
            "interrupted": interrupted,
            "selection": run.selection,
        },
        targets=[_target_json(s, s.target.name in run.not_selected) for s in run.states.values()],
        records=run.records,
        secrets=run.secrets,
        cited=run.cited,
    )
    write_document(document, out / "results.json")
    if not session.config.getoption("results_only", False):  # a --jobs child: the parent
        render_all(out / "results.json")  # renders the merged report once
    if not interrupted:  # `latest` is always a complete run
        point_latest_at(out)
    session.config.stash[REPORT_KEY] = out


def point_latest_at(out: Path) -> None:
    """`reports/latest` names this run's folder (a relative symlink)."""
    latest = out.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(out.name, target_is_directory=True)
    except OSError:
        pass


def _target_json(state: TargetState, not_selected: bool = False) -> dict[str, Any]:
    t = state.target
    running = state.running
    return {
        "name": t.name,
        "not_selected": not_selected,
        "embedded": t.embedded,
        "base_url": running.base_url if running else t.base_url,
        "server_name": running.server_name if running else t.server_name,
        "auth": list(t.auth),
        "provisioning": t.provisioning.method if t.provisioning else None,
        "start_error": state.start_error,
        "limits": t.limits(),
        "tls_verify": t.tls.verify,
        "tls_ca_file": t.tls.ca_file is not None,
        **state.info,
        "housekeeping": _housekeeping(state),
        # the requests servers rate-limit hardest, cleanup's included (a figure of the run)
        "operations": dict(sorted(state.budget.operations.items())) if state.budget else {},
        "setup_exchanges": len(state.setup_recorder.exchanges),
    }


def _housekeeping(state: TargetState) -> dict[str, Any] | None:
    parts = [u.housekeeping.to_json() for u in (state.users, state.oauth_users) if u]
    if not parts:
        return None
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            merged[key] = merged.get(key, 0 if isinstance(value, int) else []) + value
    return merged


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    out = config.stash.get(REPORT_KEY, None)
    if out is not None and config.getoption("console", "pytest") == "pytest":
        terminalreporter.write_line(f"mxconform report: {out / 'index.html'}")
