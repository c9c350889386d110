"""`mxconform run --jobs N`: the selected targets run concurrently, one child process per target
(`python -m mxconform.cli run --server NAME`), at most N at once; their results.json documents
are merged into one report folder rendered as any run's.

Secrets: each child scrubs its own console and files; the parent keeps the children's output in
memory, prints only each child's summary block (scrubbed once more with the secrets the parent
itself resolved), and never writes it anywhere."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mxconform import stopping
from mxconform.errors import HarnessError
from mxconform.http.redact import SecretRegistry
from mxconform.paths import command_line
from mxconform.results import read_document, write_document
from mxconform.targets.config import ConfigError, Target
from mxconform.targets.lifecycle import (
    ATTACH_VAR,
    RunningTarget,
    Starter,
    attachment,
    settled,
    start_target,
)

from .children import SECRETS_FD_VAR, Child, run_all

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


@dataclass
class JobsOutcome:
    exit_code: int
    document: dict[str, Any] | None
    folder: Path | None
    interrupted: str | None
    children: list[Child]


MAX_SHARDS = 4  # one Synapse answers every share: more processes only queue for it


def jobs_for(given: str, targets: int, shareable: bool = False) -> int:
    """`--jobs N`, or for `auto` a process per selected target up to the CPUs there are. A
    single embedded target (`shareable`) gets its checks shared by up to `MAX_SHARDS`
    processes instead; on one CPU everything runs in this process, with its live console."""
    cpus = os.cpu_count() or 1
    if given == "auto":
        if targets == 1 and shareable:
            return max(1, min(cpus, MAX_SHARDS))
        return max(1, min(targets, cpus))
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
    argv += ["--server", target, "--report-dir", str(report_dir), "--offline", "--jobs", "1"]
    argv += ["--results-only"]  # the merged report is rendered once, here
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
        ("--target-timeout", getattr(args, "target_timeout", None)),
    ):
        if number is not None:
            argv += [flag, str(number)]
    if args.verbose:
        argv += ["-v"]
    return argv


def send_secrets(values: list[str]) -> None:
    """In a child: the run's secret values to the parent, one JSON string a line, through the
    pipe it gave (memory only); nothing when there is none."""
    fd = os.environ.get(SECRETS_FD_VAR)
    if not fd:
        return
    try:
        with os.fdopen(int(fd), "w") as out:
            out.writelines(json.dumps(value) + "\n" for value in values)
    except (OSError, ValueError):
        pass


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
    forget = stopping.on_hard_stop(lambda: shutil.rmtree(work, ignore_errors=True))
    children = [
        Child(t.name, child_argv(args, servers, t.name, work / t.name), work / t.name)
        for t in selected
    ]
    interrupted = run_all(args, children, jobs, secrets)
    try:
        return _merge(args, base, started, children, jobs, interrupted)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        forget()


def run_shards(
    args: Any, servers: Path, target: Target, shards: int, secrets: SecretRegistry
) -> JobsOutcome:
    """One embedded target started here once, its checks dealt out to `shards` processes
    (`--shard K/N`) that attach to it; their results merged as one process's would be.

    The children import and collect while the target starts; each then reads on stdin where
    it is and the secrets to use it (never a file), or why it could not be started (their
    checks ERROR with that reason)."""
    base = Path(args.report_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    work = Path(tempfile.mkdtemp(prefix=".jobs-", dir=base))
    forget = stopping.on_hard_stop(lambda: shutil.rmtree(work, ignore_errors=True))
    name = target.name
    print(f"{name}: starting embedded {target.embedded}, shared by {shards} processes")
    starter = Starter([lambda: start_target(target, work / "logs" / name, offline=True)])
    starter.start()
    handed: list[str] = []
    lock = threading.Lock()

    def hand_over() -> str:
        with lock:
            if not handed:
                handed.append(_handover(starter.futures[0], name, secrets))
            return handed[0]

    children = []
    for k in range(1, shards + 1):
        folder = work / f"{name}-{k}"
        argv = [*child_argv(args, servers, name, folder), "--shard", f"{k}/{shards}"]
        children.append(Child(f"{name} {k}/{shards}", argv, folder))
    try:
        env = {**os.environ, ATTACH_VAR: name}
        interrupted = run_all(args, children, shards, secrets, env, hand_over, True)
    finally:
        running = settled(starter.futures[0])
        if running is not None:
            running.stop(secrets.scrub)
        starter.release()
    try:
        return _merge(args, base, started, children, shards, interrupted, work / "logs")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        forget()


def _handover(future: Future[RunningTarget], name: str, secrets: SecretRegistry) -> str:
    """The line the children attach with, once the target answers (its secrets are then
    scrubbed from their output here too)."""
    try:
        running = future.result()
    except (HarnessError, ConfigError) as exc:
        return attachment(None, f"target {name} could not be started: {exc}")
    for value in (running.shared_secret, *running.held_secrets):
        secrets.add(value, "shared_secret")
    if running.oauth_admin is not None:
        secrets.add_pair(running.oauth_admin.client_id, running.oauth_admin.client_secret)
    startup = running.embedded.startup_s if running.embedded else None
    print(f"{name}: started in {startup or 0:.1f} s at {running.base_url}", flush=True)
    return attachment(running)


def _merge(
    args: Any,
    base: Path,
    started: datetime,
    children: list[Child],
    jobs: int,
    interrupted: str | None,
    shared_logs: Path | None = None,
) -> JobsOutcome:
    """The children's documents as one report folder; with `shared_logs` (the logs of a
    target the children shared) they are one target's shares, merged into one part first."""
    # imported here: the parent of a shared target starts it before loading the rest
    from mxconform.plugin.record import point_latest_at
    from mxconform.report import render_all
    from mxconform.report.merge import merge_shards, merge_targets

    documents = []
    for child in children:
        child.folder = _child_folder(child.report_dir)
        if child.folder is not None:
            documents.append(read_document(child.folder / "results.json"))
    if shared_logs is not None and documents:
        documents = [merge_shards(documents)]
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
    if shared_logs is not None and shared_logs.is_dir():  # the shared target's, scrubbed
        shutil.copytree(shared_logs, folder / "logs", dirs_exist_ok=True)
    write_document(document, folder / "results.json")
    render_all(folder / "results.json")
    if not interrupted:
        point_latest_at(folder)
    return JobsOutcome(code, document, folder, interrupted, children)
