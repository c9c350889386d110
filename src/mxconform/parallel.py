"""`mxconform run --jobs N`: the selected targets run concurrently, one child process per target
(`python -m mxconform.cli run --server NAME`), at most N at once; their results.json documents
are merged into one report folder rendered as any run's.

Secrets: each child scrubs its own console and files; the parent keeps the children's output in
memory, prints only each child's summary block (scrubbed once more with the secrets the parent
itself resolved), and never writes it anywhere."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from mxconform.http.redact import SecretRegistry
from mxconform.paths import command_line
from mxconform.plugin.record import point_latest_at
from mxconform.report import render_all
from mxconform.report.merge import merge_targets
from mxconform.results import read_document, write_document
from mxconform.targets.config import ConfigError, Target

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
# The child's console lines passed on while it runs (the rest stays in memory).
_TARGET_LINE = r"\S+: (starting|started|done|stopped|https?://)"  # its start, ready and end
PROGRESS = re.compile(rf"^({_TARGET_LINE}|\s+(FAIL|WARN|ERROR|UNAVAILABLE)\s)")
PROGRESS_VERBOSE = re.compile(rf"^({_TARGET_LINE}|\s+[A-Z]+\s)")
SUMMARY_START = re.compile(r"^mxconform: \d[\d,]* checks? on \d+ targets? in ")
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


@dataclass
class Child:
    target: str
    argv: list[str]
    report_dir: Path
    exit_code: int | None = None  # None: never started (the run was interrupted first)
    summary: list[str] = field(default_factory=list)
    folder: Path | None = None


@dataclass
class JobsOutcome:
    exit_code: int
    document: dict[str, Any] | None
    folder: Path | None
    interrupted: str | None
    children: list[Child]


def jobs_for(given: str, targets: int) -> int:
    """`--jobs N`, or for `auto` a process per selected target up to the CPUs there are
    (1 for a single target: everything in this process, with its live console)."""
    if given == "auto":
        return max(1, min(targets, os.cpu_count() or 1))
    try:
        jobs = int(given)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ConfigError("--jobs: expected auto or a number of processes from 1 up")
    return jobs


def child_argv(args: Any, servers: Path, target: str, report_dir: Path) -> list[str]:
    """The child's command line: the parent's options for one target, cache-only releases."""
    argv = [sys.executable, "-m", "mxconform.cli", "run", "--servers", str(servers)]
    argv += ["--server", target, "--report-dir", str(report_dir), "--offline"]
    for flag, value in (
        ("--spec-version", args.spec_version),
        ("--oauth-driver", getattr(args, "oauth_driver", None)),
        ("-k", args.k),
        ("--tb", getattr(args, "tb", None)),
        ("--fail-on", getattr(args, "fail_on", None)),
    ):
        if value:
            argv += [flag, value]
    if (getattr(args, "repeat", 1) or 1) > 1:
        argv += ["--repeat", str(args.repeat)]
    for rid in getattr(args, "requirement", None) or []:
        argv += ["--requirement", rid]
    for flag, number in (
        ("--hypothesis-examples", getattr(args, "hypothesis_examples", None)),
        ("--hypothesis-seed", getattr(args, "hypothesis_seed", None)),
    ):
        if number is not None:
            argv += [flag, str(number)]
    if args.verbose:
        argv += ["-v"]
    return argv


def _summary_block(stdout: str, stderr: str) -> list[str]:
    """The child's own summary (after its "mxconform: N checks on 1 target" line); without
    one, its last error line."""
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if SUMMARY_START.match(line)]
    if starts:  # less its report folder, which is merged and removed
        block = lines[starts[-1] + 1 :]
        return [line for line in block if line.strip() and not line.strip().startswith("report: ")]
    last = [line for line in stderr.splitlines() if line.strip()][-1:]
    return [f"  no report: {line}" for line in last] or ["  no report"]


def _child_folder(report_dir: Path) -> Path | None:
    """The folder the child wrote: `latest`, else (an interrupted run) its newest one."""
    latest = report_dir / "latest"
    if (latest / "results.json").exists():
        return latest.resolve()
    found = sorted(p.parent for p in report_dir.glob("*/results.json") if p.parent.name != "latest")
    return found[-1] if found else None


def _run_folder(base: Path, started: datetime) -> Path:
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path, n = base / stamp, 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def exit_code_of(codes: list[int]) -> int:
    """The worst child's: 1 if any child found a FAIL, else 2 if any child failed otherwise."""
    if EXIT_FAIL in codes:
        return EXIT_FAIL
    return EXIT_ERROR if any(c != EXIT_OK for c in codes) else EXIT_OK


def run_children(
    args: Any, servers: Path, selected: list[Target], jobs: int, secrets: SecretRegistry
) -> JobsOutcome:
    base = Path(args.report_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    work = Path(tempfile.mkdtemp(prefix=".jobs-", dir=base))
    children = [
        Child(t.name, child_argv(args, servers, t.name, work / t.name), work / t.name)
        for t in selected
    ]
    shown = PROGRESS_VERBOSE if getattr(args, "verbose", False) else PROGRESS
    running: dict[str, subprocess.Popen[str]] = {}
    lock = threading.Lock()
    stop: list[str] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        with lock:
            if not stop:
                stop.append(name)
            for proc in running.values():  # once each: the child then cleans up in bounded time
                proc.send_signal(signum)

    def run_one(child: Child) -> None:
        with lock:
            if stop:
                return
            proc = subprocess.Popen(
                child.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,  # signals reach it from this process only, once
            )
            running[child.target] = proc
        errors: list[str] = []
        drain = threading.Thread(target=lambda: errors.extend(proc.stderr or []), daemon=True)
        drain.start()
        lines: list[str] = []
        summary = False
        for line in proc.stdout or []:  # its progress as it comes: start, problems, done
            lines.append(line)
            summary = summary or bool(SUMMARY_START.match(line))  # said once, merged, later
            if not summary and shown.match(line):
                with lock:
                    print(f"[{child.target}] {secrets.scrub(line.rstrip())}", flush=True)
        proc.wait()
        drain.join()
        out, err = "".join(lines), "".join(errors)
        with lock:
            running.pop(child.target, None)
            child.exit_code = proc.returncode
            child.summary = [secrets.scrub(line) for line in _summary_block(out, err)]
            print(f"[{child.target}] exit {proc.returncode}", flush=True)
            if not any(SUMMARY_START.match(line) for line in lines):  # else the merged summary
                for line in child.summary:  # says it: here only what went wrong
                    print(f"[{child.target}] {line}", flush=True)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(run_one, children))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    interrupted = stop[0] if stop else None
    try:
        return _merge(args, base, work, started, children, jobs, interrupted)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _merge(
    args: Any,
    base: Path,
    work: Path,
    started: datetime,
    children: list[Child],
    jobs: int,
    interrupted: str | None,
) -> JobsOutcome:
    documents = []
    for child in children:
        child.folder = _child_folder(child.report_dir)
        if child.folder is not None:
            documents.append(read_document(child.folder / "results.json"))
    codes = [c.exit_code if c.exit_code is not None else EXIT_ERROR for c in children]
    code = exit_code_of(codes)
    if interrupted or any(c in (EXIT_SIGINT, EXIT_SIGTERM) for c in codes):
        interrupted = interrupted or ("SIGTERM" if EXIT_SIGTERM in codes else "SIGINT")
        code = EXIT_SIGTERM if interrupted == "SIGTERM" else EXIT_SIGINT
    if not documents:
        return JobsOutcome(code, None, None, interrupted, children)
    wall = (datetime.now(UTC) - started).total_seconds()
    command = command_line()
    document = merge_targets(documents, command, jobs, wall)
    if interrupted and not document["run"].get("interrupted"):
        document["run"]["interrupted"] = interrupted
    folder = _run_folder(base, started)
    for child in children:  # the children's scrubbed logs and browser captures
        for sub in ("logs", "browser"):
            if child.folder is not None and (child.folder / sub).is_dir():
                shutil.copytree(child.folder / sub, folder / sub, dirs_exist_ok=True)
    write_document(document, folder / "results.json")
    render_all(folder / "results.json")
    if not interrupted:
        point_latest_at(folder)
    return JobsOutcome(code, document, folder, interrupted, children)
