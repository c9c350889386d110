"""The children of `run --jobs N` while they run: started at most N at once, their progress
passed on, and a stop signal passed on to each of them once (a second one kills them).

A stop signal to the parent or to any child stops the whole run: the parent tells every
running child (once), and a child that ended by a signal does the same for the others."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mxconform import stopping
from mxconform.http.redact import SecretRegistry

# The child's console lines passed on while it runs (the rest stays in memory).
# its start, ready (or not) and end
_TARGET_LINE = r"\S+: (starting|started|done|stopped|UNAVAILABLE|https?://)"
PROGRESS = re.compile(rf"^({_TARGET_LINE}|\s+(FAIL|WARN|ERROR|UNAVAILABLE)\s)")
PROGRESS_VERBOSE = re.compile(rf"^({_TARGET_LINE}|\s+[A-Z]+\s)")
STARTING = re.compile(r"^\S+: starting ")
SUMMARY_START = re.compile(r"^mxconform: \d[\d,]* checks? on \d+ targets? in ")
# A child sharing its target writes every secret value it saw to this descriptor at its end,
# so that the parent, which stops the target, scrubs the target's kept logs of them too.
SECRETS_FD_VAR = "MXCONFORM_SECRETS_FD"
# How a child's end says a stop signal ended it: its exit code, or the signal itself.
_STOPPED_BY = {130: "SIGINT", 143: "SIGTERM", -2: "SIGINT", -15: "SIGTERM"}
KILL_GRACE_S = 5.0  # a hard stop: how long children get to kill what they started


@dataclass
class Child:
    target: str
    argv: list[str]
    report_dir: Path
    exit_code: int | None = None  # None: never started (the run was interrupted first)
    summary: list[str] = field(default_factory=list)
    folder: Path | None = None


class _Running:
    """The children running now, and which of them were told to stop. Read without a lock
    by the signal handler (the main thread may hold any lock when it runs)."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self._told: dict[int, object] = {}

    def tell(self, proc: subprocess.Popen[str]) -> None:
        """Pass the run's stop signal to `proc`, once whoever calls it (the signal handler
        or its own thread; `setdefault` is atomic)."""
        signame, mine = stopping.requested(), object()
        if signame is None or self._told.setdefault(proc.pid, mine) is not mine:
            return
        with contextlib.suppress(OSError):
            proc.send_signal(signal.Signals[signame])

    def tell_all(self) -> None:
        for proc in list(self.procs.values()):
            self.tell(proc)

    def kill_all(self) -> None:
        """A hard stop: each child gets the signal again (it then kills its own servers and
        removes their state), and is killed after `KILL_GRACE_S`."""
        procs = list(self.procs.values())
        signum = signal.Signals[stopping.requested() or "SIGTERM"]
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.send_signal(signum)
        deadline = time.monotonic() + KILL_GRACE_S
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(OSError):
                proc.kill()


def _read_secrets(fd: int, into: list[str]) -> None:
    with os.fdopen(fd) as pipe:
        for line in pipe:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, str):
                into.append(value)


def _feed(proc: subprocess.Popen[str], line: Callable[[], str]) -> None:
    """Write the child its one line on stdin (when it is ready), then close it."""
    try:
        assert proc.stdin is not None
        proc.stdin.write(line())
        proc.stdin.close()
    except (OSError, ValueError):  # the child is gone already
        pass


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


def prefixed(label: str, line: str) -> str:
    """A child's line with its target's name once: "synapse-legacy: started ...". The child's
    own lines about its target already begin with the name (a share's label, "synapse-legacy
    1/2", takes its place); any other line (a problem as it happens, its end) gets it."""
    name = label.split(" ", 1)[0]  # a target's name has no space (servers.yaml's pattern)
    text = line.rstrip()
    if text.startswith(f"{name}: "):
        return label + text[len(name) :]
    return f"{label}: {text.strip()}"


def run_all(
    args: Any,
    children: list[Child],
    jobs: int,
    secrets: SecretRegistry,
    env: dict[str, str] | None = None,
    hand_over: Callable[[], str] | None = None,
    collect_secrets: bool = False,
) -> str | None:
    """Run the children, at most `jobs` at once, passing on their progress; the signal that
    stopped the run, if one did (it is passed on to each child, once)."""
    shown = PROGRESS_VERBOSE if getattr(args, "verbose", False) else PROGRESS
    running = _Running()
    lock = threading.Lock()

    def run_one(child: Child) -> None:
        with lock:
            if stopping.requested():
                return
            child_env, read_end = env, -1
            passed: tuple[int, ...] = ()
            if collect_secrets:  # a pipe the child writes the secrets it saw to, at its end
                read_end, write_end = os.pipe()
                child_env = {**(env or os.environ), SECRETS_FD_VAR: str(write_end)}
                passed = (write_end,)
            proc = subprocess.Popen(
                child.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.PIPE if hand_over else subprocess.DEVNULL,
                text=True,
                env=child_env,
                pass_fds=passed,
                start_new_session=True,  # signals reach it from this process only, once
            )
            for fd in passed:
                os.close(fd)
            running.procs[child.target] = proc
        running.tell(proc)  # a stop that came while it was being started
        learnt: list[str] = []
        reader = None
        if read_end >= 0:
            reader = threading.Thread(target=_read_secrets, args=(read_end, learnt), daemon=True)
            reader.start()
        errors: list[str] = []
        drain = threading.Thread(target=lambda: errors.extend(proc.stderr or []), daemon=True)
        drain.start()
        if hand_over is not None:
            threading.Thread(target=_feed, args=(proc, hand_over), daemon=True).start()
        lines: list[str] = []
        summary = False
        for line in proc.stdout or []:  # its progress as it comes: start, problems, done
            lines.append(line)
            summary = summary or bool(SUMMARY_START.match(line))  # said once, merged, later
            if summary or not shown.match(line):
                continue
            if hand_over is not None and STARTING.match(line):  # a share: the parent starts it
                continue
            with lock:
                print(prefixed(child.target, secrets.scrub(line)), flush=True)
        proc.wait()
        drain.join()
        if reader is not None:
            reader.join(timeout=30)
        stopped_by = _STOPPED_BY.get(proc.returncode)
        if stopped_by and stopping.request(stopped_by):  # a child was stopped: the whole run
            running.tell_all()
        out, err = "".join(lines), "".join(errors)
        with lock:
            for value in learnt:
                secrets.add(value)
            running.procs.pop(child.target, None)
            child.exit_code = proc.returncode
            child.summary = [secrets.scrub(line) for line in _summary_block(out, err)]
            print(f"{child.target}: exit {proc.returncode}", flush=True)
            if not any(SUMMARY_START.match(line) for line in lines):  # else the merged summary
                for line in child.summary:  # says it: here only what went wrong
                    print(prefixed(child.target, line), flush=True)

    forget = stopping.on_hard_stop(running.kill_all)
    # passed on, never raised here; the children end first, each within its own budget
    previous = stopping.install(lambda name: running.tell_all(), defer_in_imports=False)
    stopping.watch(stopping.STOP_BUDGET_S + KILL_GRACE_S + 20)
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(run_one, children))
    finally:
        stopping.restore(previous)
        forget()
    return stopping.requested()
