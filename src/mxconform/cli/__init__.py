"""`mxconform`: run the suites, serve embedded targets, list targets, re-render a report."""

from __future__ import annotations

# First, before the half second of imports below: a stop signal meanwhile is kept (stops.py).
from .stops import plain_signals, run_stoppable

# isort: split
import argparse
import contextlib
import gc
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mxconform import stopping
from mxconform.cli.pytest_args import inner_plugins, pytest_argv
from mxconform.errors import HarnessError
from mxconform.parallel import jobs_for, send_secrets
from mxconform.results import read_document
from mxconform.targets.config import ConfigError, Target
from mxconform.targets.lifecycle import keep_handover_stream

from .catalogue import (
    add_selection,
    check_requirements,
    check_run_selection,
    list_checks,
    list_requirements,
)
from .ci import add_parser as add_ci_parser
from .ci import ci_command
from .cleanup import add_parser as add_cleanup_parser
from .cleanup import cleanup_command
from .commands import _load, list_targets, prepare_releases, serve, synapse_command
from .dendrite import add_parser as add_dendrite_parser
from .dendrite import dendrite_command
from .options import OFFLINE_HELP, add_run_parser, check_run
from .results_commands import add_parsers, diff, matrix, rerender
from .summary import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_OK,
    exit_status,
    print_summary,
    summary_json,
    summary_lines,
)

EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # as a shell reports a process ended by the signal

# Collect young objects less often: a run allocates much and keeps little, and at CPython's
# default (700, 10, 10) the collector took about 8% of the harness's CPU (4% with these).
GC_THRESHOLDS = (10_000, 10, 10)


@dataclass
class RunOutcome:
    """What a run left behind; `secrets` stays in memory (the canary test reads it)."""

    exit_code: int
    report_dir: Path | None
    pytest_exit: int
    secrets: list[str] = field(default_factory=list)


class _Capture:
    """Picks the run's report folder and secret registry off the pytest config at the end."""

    def __init__(self) -> None:
        self.report_dir: Path | None = None
        self.secrets: list[str] = []
        self.interrupted: str | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from mxconform.plugin.options import INTERRUPT_KEY
        from mxconform.plugin.state import REPORT_KEY, get_run, has_run

        self.report_dir = config.stash.get(REPORT_KEY, None)
        self.interrupted = config.stash.get(INTERRUPT_KEY, None)
        if has_run(config):
            self.secrets = get_run(config).secrets.values()


def run_suites(args: argparse.Namespace) -> RunOutcome:
    """Run the suites once, or `--repeat N` times merged into one report."""
    repeat = getattr(args, "repeat", 1) or 1
    if repeat < 1:
        raise ConfigError("--repeat: expected a number of runs from 1 up")
    jobs = _jobs(args, repeat)
    if jobs > 1:
        return _run_jobs(args, jobs)
    if repeat == 1:
        return _run_once(args)
    if getattr(args, "json", False):
        raise ConfigError("--json with --repeat: not supported (one summary per run)")
    outcomes = [_run_once(args) for _ in range(repeat)]
    secrets = [s for o in outcomes for s in o.secrets]
    folders = [o.report_dir for o in outcomes if o.report_dir is not None]
    if len(folders) != repeat:
        return RunOutcome(EXIT_ERROR, None, outcomes[-1].pytest_exit, secrets)
    from mxconform.report import render_all
    from mxconform.report.repeat import merge_repeats
    from mxconform.results import write_document

    merged = merge_repeats([read_document(f / "results.json") for f in folders])
    folder = folders[-1].parent / f"{folders[-1].name}-repeat{repeat}"
    folder.mkdir()
    write_document(merged, folder / "results.json")
    render_all(folder / "results.json")
    latest = folder.parent / "latest"
    if latest.is_symlink():
        latest.unlink()
    latest.symlink_to(folder.name, target_is_directory=True)
    flaky = [c["check_id"] for c in merged["checks"] if c.get("flaky")]
    print(f"\n{repeat} runs merged: {len(flaky)} flaky; report: {folder / 'index.html'}")
    for check_id in flaky:
        print(f"  flaky: {check_id}")
    return RunOutcome(max(o.exit_code for o in outcomes), folder, outcomes[-1].pytest_exit, secrets)


def _jobs(args: argparse.Namespace, repeat: int) -> int:
    given = str(getattr(args, "jobs", None) or "1")
    if given != "auto":
        return jobs_for(given, 0)
    if repeat > 1 or getattr(args, "tb", None):
        return 1  # repeated runs and tracebacks stay in this process
    selected = _load(args.servers)[1].select(args.server or [])
    selection = args.k or getattr(args, "requirement", None)  # a few checks: not worth sharing
    return jobs_for(given, len(selected), _shareable(selected) and not selection)


def _shareable(selected: list[Target]) -> bool:
    """A single embedded target: its checks can be shared by processes attached to it. A
    remote target never is (its request-rate bound is per process)."""
    return len(selected) == 1 and selected[0].embedded is not None


def _prepare(args: argparse.Namespace) -> tuple[Path, list[Target], list[str]]:
    """Check the baseline, select the targets, resolve their secrets (a missing variable is a
    usage error, not ERROR) and make their Synapse releases ready."""
    if args.baseline:
        try:
            read_document(Path(args.baseline))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--baseline: {exc}") from None
    path, servers = _load(args.servers)
    selected = servers.select(args.server or [])
    secrets = [value for t in selected for value in start_check(t)]
    human = sys.stderr if getattr(args, "json", False) else sys.stdout  # --json: stdout is JSON
    with contextlib.redirect_stdout(human):
        prepare_releases(selected, args.offline)
    if stopping.requested():  # a stop whose KeyboardInterrupt was lost on the way here
        raise KeyboardInterrupt
    return path, selected, secrets


def _baseline_regressions(
    args: argparse.Namespace, folder: Path, document: dict[str, Any], human: Any
) -> bool:
    """With --baseline: the diff, kept in results.json (and the page), printed; does it fail
    the run (regressions; lost coverage too with `--fail-on lost-coverage`)?"""
    if not args.baseline:
        return False
    from .baseline import attach_baseline

    result = attach_baseline(folder, Path(args.baseline), document)
    print(f"\ncompared with {args.baseline}:\n{result.text}", file=human)
    return result.gates(getattr(args, "fail_on", "fail"))


def _run_jobs(args: argparse.Namespace, jobs: int) -> RunOutcome:
    """`--jobs N`: a child process per target, at most N at once, merged into one report."""
    from mxconform.http.redact import SecretRegistry
    from mxconform.parallel import run_children, run_shards

    path, selected, secrets = _prepare(args)
    human = sys.stderr if getattr(args, "json", False) else sys.stdout
    registry = SecretRegistry()
    for value in secrets:
        registry.add(value)
    started = time.perf_counter()
    with contextlib.redirect_stdout(human):  # --json: the children's progress to stderr
        if _shareable(selected):
            outcome = run_shards(args, path.resolve(), selected[0], jobs, registry)
        else:
            print(f"running {len(selected)} targets, at most {jobs} at once, a process each")
            outcome = run_children(args, path.resolve(), selected, jobs, registry)
    wall = time.perf_counter() - started
    if outcome.document is None or outcome.folder is None:
        print("mxconform: no target wrote a report", file=sys.stderr)
        return RunOutcome(outcome.exit_code or EXIT_ERROR, None, 0, registry.values())
    code = outcome.exit_code
    regressions = _baseline_regressions(args, outcome.folder, outcome.document, human)
    if regressions and not outcome.interrupted:
        code = EXIT_FAIL
    reason = ""
    if not outcome.interrupted:  # the merged document's own reason, said once
        code, reason = max(
            (code, ""),
            exit_status(outcome.document, 0, regressions, getattr(args, "fail_on", "fail")),
        )
    if code and not reason:
        worst = ", ".join(f"{c.target} exit {c.exit_code}" for c in outcome.children)
        reason = f"the worst of the targets' exit codes ({worst})"
    fail_on = getattr(args, "fail_on", "fail")
    lines = summary_lines(outcome.document, outcome.folder, wall, code, reason, fail_on)
    print_summary(lines, human)
    if getattr(args, "json", False):
        print(summary_json(outcome.document, outcome.folder, wall, code, reason, fail_on))
    return RunOutcome(code, outcome.folder, 0, registry.values())


def _run_once(args: argparse.Namespace) -> RunOutcome:
    path, _selected, _ = _prepare(args)
    human = sys.stderr if getattr(args, "json", False) else sys.stdout  # --json: stdout is JSON
    argv = pytest_argv(args, path)
    keep_handover_stream()  # a --jobs child: its target comes on stdin (before pytest's capture)
    capture = _Capture()
    started = time.perf_counter()
    with contextlib.redirect_stdout(human):
        code = int(pytest.main(argv, plugins=[capture, *inner_plugins()]))
    wall = time.perf_counter() - started
    send_secrets(capture.secrets)  # a child sharing its target: to the parent, which stops it
    if capture.report_dir is None and getattr(args, "shard", None) and code == 5:
        print(f"mxconform: share {args.shard} of the checks holds none of those selected")
        return RunOutcome(EXIT_OK, None, code, capture.secrets)  # the other shares report
    if capture.report_dir is None:
        print(
            "mxconform: no checks ran (nothing selected, or the run failed before any check)",
            file=sys.stderr,
        )
        if args.json:
            print(json.dumps({"exit_code": EXIT_ERROR, "exit_reason": "no checks ran"}))
        return RunOutcome(EXIT_ERROR, None, code, capture.secrets)
    document = read_document(capture.report_dir / "results.json")
    regressions = _baseline_regressions(args, capture.report_dir, document, human)
    exit_code, reason = exit_status(document, code, regressions, getattr(args, "fail_on", "fail"))
    if getattr(args, "results_only", False) and all(
        t.get("not_selected") for t in document["targets"]
    ):  # a --jobs child whose target the selection left out: the parent judges the whole
        exit_code, reason = EXIT_OK, "not selected"
    if capture.interrupted or code == pytest.ExitCode.INTERRUPTED:
        signame = capture.interrupted or "SIGINT"
        exit_code = EXIT_SIGTERM if signame == "SIGTERM" else EXIT_SIGINT
        reason = f"interrupted by {signame}: partial report, reports/latest left as it was"
    lines = summary_lines(document, capture.report_dir, wall, exit_code, reason, args.fail_on)
    print_summary(lines, human)
    if args.json:
        data = summary_json(document, capture.report_dir, wall, exit_code, reason, args.fail_on)
        print(data, flush=True)
    return RunOutcome(exit_code, capture.report_dir, code, capture.secrets)


def start_check(target: Target) -> list[str]:
    """Fail early, as a usage error, on a target whose secret (or account name) variables
    are not set; the secrets' values, for scrubbing."""
    for i, account in enumerate(target.oauth.accounts if target.oauth else []):
        account.resolved_username(f"target {target.name}: oauth.accounts[{i}].username")
    return [ref.resolve(where) for where, ref in target.secret_refs()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mxconform", description=__doc__)
    p.add_argument("--version", action="version", version=_version_text())
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    servers_help = "targets file (default: ./servers.yaml, else the one shipped in the package)"
    add_run_parser(sub, servers_help)
    offline = OFFLINE_HELP
    ls = sub.add_parser("list", help="list the checks (without running them or any target)")
    ls.add_argument("--servers", metavar="FILE", help=servers_help)
    ls.add_argument(
        "--server",
        metavar="NAME",
        action="append",
        help="the checks as `run --server NAME` records them on that target (repeatable)",
    )
    add_selection(ls)
    ls.add_argument("--json", action="store_true", help="print the checks as JSON")
    rq = sub.add_parser("requirements", help="the requirement catalogue and the checks citing each")
    rq.add_argument("--servers", metavar="FILE", help=servers_help)
    rq.add_argument("--uncovered", action="store_true", help="only requirements no check cites")
    rq.add_argument("--json", action="store_true", help="print the rows as JSON")
    s = sub.add_parser("serve", help="start embedded targets and print their URLs")
    s.add_argument(
        "names", nargs="*", metavar="NAME", help="targets to start (default: embedded defaults)"
    )
    s.add_argument("--offline", action="store_true", help=offline)
    s.add_argument("--servers", metavar="FILE", help=servers_help)
    s.add_argument("--log-dir", metavar="DIR", help="keep each server's log under DIR/<name>/")
    t = sub.add_parser("targets", help="list the targets of servers.yaml and what each declares")
    t.add_argument("--servers", metavar="FILE", help=servers_help)
    t.add_argument("--json", action="store_true", help="print the targets as JSON on stdout")
    add_parsers(sub)
    syn = sub.add_parser("synapse", help="Synapse releases for synapse_version (the cache)")
    syn_sub = syn.add_subparsers(dest="action", required=True, metavar="ACTION")
    inst = syn_sub.add_parser("install", help="install a release (1.70.1) or line (1.130.*)")
    inst.add_argument("spec", metavar="VERSION_SPEC", help="an exact release or a line (1.130.*)")
    inst.add_argument("--offline", action="store_true", help="only look in the cache")
    syn_sub.add_parser("list", help="the cached releases, their venvs and pins")
    add_dendrite_parser(sub)
    add_cleanup_parser(sub)
    add_ci_parser(sub)
    return p


def _checked(args: argparse.Namespace) -> int:
    """The run, once its `-k` is known to select some check (a collection, no target
    started: a typo is one line naming the closest check ids, not two targets started)."""
    check_run_selection(args)
    return run_suites(args).exit_code


def _version_text() -> str:
    from mxconform import __version__
    from mxconform.paths import git_commit

    commit = git_commit()
    return f"mxconform {__version__}" + (f" (commit {commit[:12]})" if commit else "")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command in ("run", "list"):
            check_requirements(args)  # an unknown -r id: the closest ones, before anything
        if args.command == "run":
            check_run(args)
            gc.set_threshold(*GC_THRESHOLDS)
            return run_stoppable(lambda: _checked(args))
        if (stopped := plain_signals()) is not None:  # it came while the program imported
            return stopped
        if args.command == "serve":
            return serve(args)
        if args.command == "list":
            return list_checks(args)
        if args.command == "requirements":
            return list_requirements(args)
        if args.command == "targets":
            return list_targets(args)
        if args.command == "diff":
            return diff(args)
        if args.command == "matrix":
            return matrix(args)
        if args.command == "synapse":
            return synapse_command(args)
        if args.command == "cleanup":
            return cleanup_command(args)
        if args.command == "dendrite":
            return dendrite_command(args)
        if args.command == "ci":
            return ci_command(args)
        return rerender(args)
    except (ConfigError, HarnessError) as exc:
        print(f"mxconform: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
