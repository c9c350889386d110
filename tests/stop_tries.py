"""Stop signals at random moments of a default `mxconform run` (two embedded targets, a child
process each): does every run end by itself, within its budget, leaving nothing behind?

    PYTHONPATH=src python tests/stop_tries.py --tries 50 [--window 3] [--seed N]

Every process a try starts carries a tag in its environment (children and Synapses inherit
it), so that what is left is found even when reparented; the embedded state goes to a
TMPDIR of the try's own. Used by `test_stop_signals.py` (a few tries in the main suite, 50
under the `soak` marker) and runnable alone for the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

TAG_VAR = "MXCONFORM_STOP_TRY"
# A default run (embedded targets: their accounts go with them) ends this soon after a first
# signal; its hard bound is `mxconform.stopping.STOP_BUDGET_S` (the accounts' clean-up of a
# remote target), which this keeps well under. A second signal: at once (kills, no clean-up).
FIRST_BUDGET_S = 45.0
SECOND_BUDGET_S = 10.0
# How a run a stop signal ended exits: 130/143, or killed by it before Python's handlers.
STOPPED_EXITS = {130, 143, -2, -15}


@dataclass
class Try:
    """One run and what became of it."""

    number: int
    signame: str
    after_s: float  # when the first signal came, from the start
    second_after_s: float | None  # a second signal, this long after the first
    ended_s: float | None = None  # from the first signal to the run's exit; None: it hung
    exit_code: int | None = None
    left_processes: list[str] = field(default_factory=list)
    left_folders: list[str] = field(default_factory=list)
    output: str = ""

    @property
    def stopped(self) -> bool:
        """Ended by the signal, not a run that went on to its end. CPython interrupted while
        it starts itself, before it runs any of ours, exits 1 ("Could not import runpy
        module", "Fatal Python error: init_import_site")."""
        own = ("Could not import runpy module", "Fatal Python error: init_")
        if self.exit_code == 1 and any(line in self.output for line in own):
            return True
        return self.exit_code in STOPPED_EXITS

    @property
    def ok(self) -> bool:
        return self.stopped and not self.left_processes and not self.left_folders

    def line(self) -> str:
        second = f", again +{self.second_after_s:.2f}s" if self.second_after_s is not None else ""
        ended = f"ended in {self.ended_s:.2f}s" if self.ended_s is not None else "HUNG"
        left = ""
        if self.left_processes or self.left_folders:
            left = f"; left: {self.left_processes + self.left_folders}"
        return (
            f"try {self.number}: {self.signame} at {self.after_s:.2f}s{second}: {ended} "
            f"(exit {self.exit_code}){left}"
        )


def tagged(tag: str) -> dict[int, str]:
    """The processes whose environment carries `tag`: pid -> command line."""
    found = {}
    needle = f"{TAG_VAR}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found[int(entry.name)] = cmd.strip()
    return found


def kill_tagged(tag: str) -> None:
    for pid in tagged(tag):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def one_try(
    number: int,
    rng: random.Random,
    window_s: float = 3.0,
    second_chance: float = 0.3,
    more: list[str] | None = None,
) -> Try:
    """A default run, a SIGINT or SIGTERM at a random moment of its first `window_s`, and
    sometimes a second one soon after; what it left. `more`: further `run` options (e.g.
    `--server synapse-legacy`: one embedded target, started by the parent, shared)."""
    signum = rng.choice([signal.SIGINT, signal.SIGTERM])
    after = rng.uniform(0.0, window_s)
    second = rng.uniform(0.0, 2.0) if rng.random() < second_chance else None
    result = Try(number, signal.Signals(signum).name, after, second)
    tag = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="stop-try-") as folder:
        base = Path(folder)
        state = base / "state"
        state.mkdir()
        env = {**os.environ, TAG_VAR: tag, "TMPDIR": str(state), "PYTHONUNBUFFERED": "1"}
        command = ["run", "--report-dir", str(base / "reports"), *(more or [])]
        out = open(base / "out.txt", "w+b")  # noqa: SIM115 - read back below
        proc = subprocess.Popen(
            [sys.executable, "-m", "mxconform.cli", *command],
            cwd=base,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # SIGINT as a terminal gives it: a background job of a shell without job control
            # (this script started with `&`) starts with it ignored, and so would the run
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        time.sleep(after)
        proc.send_signal(signum)
        sent = time.monotonic()
        budget = FIRST_BUDGET_S
        if second is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=second)
            if proc.poll() is None:
                proc.send_signal(signum)
                budget = second + SECOND_BUDGET_S
        try:
            proc.wait(timeout=max(0.0, budget - (time.monotonic() - sent)))
            result.ended_s = time.monotonic() - sent
            result.exit_code = proc.returncode
        except subprocess.TimeoutExpired:
            if os.environ.get("STOP_TRY_DUMP"):  # diagnostics: faulthandler on SIGUSR1
                for pid in tagged(tag):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGUSR1)
                time.sleep(2)
        time.sleep(0.3)  # what an ended run leaves must be gone by now (Synapse's own exit)
        result.left_processes = [f"{pid} {cmd[:120]}" for pid, cmd in tagged(tag).items()]
        result.left_folders = sorted(p.name for p in state.iterdir() if "mxconform" in p.name)
        reports = base / "reports"
        if reports.is_dir():  # the children's work folder (`run --jobs`)
            result.left_folders += sorted(p.name for p in reports.glob(".jobs-*"))
        kill_tagged(tag)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        out.seek(0)
        result.output = out.read().decode(errors="replace")
        out.close()
    return result


def summary(tries: list[Try], took_s: float) -> str:
    """The figures: tries, how long the slowest took to end (after one signal, and after
    the second when there was one), what hung or was left."""
    once = [t.ended_s for t in tries if t.ended_s is not None and t.second_after_s is None]
    twice = [
        t.ended_s - (t.second_after_s or 0)
        for t in tries
        if t.ended_s is not None and t.second_after_s is not None and t.ended_s > t.second_after_s
    ]
    hung = [t.number for t in tries if t.ended_s is None]
    went_on = [t.number for t in tries if t.ended_s is not None and not t.stopped]
    left = [t.number for t in tries if t.left_processes or t.left_folders]
    return (
        f"{len(tries)} tries in {took_s:.0f} s: max {max(once, default=0):.2f} s to end after "
        f"one signal ({len(once)} tries), max {max(twice, default=0):.2f} s after a second "
        f"({len(twice)} tries); hung: {hung}; not stopped: {went_on}; leftovers: {left}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tries", type=int, default=50)
    p.add_argument("--window", type=float, default=3.0, help="seconds the first signal falls in")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--second", type=float, default=0.3, help="share of tries signalled twice")
    p.add_argument("--run-arg", action="append", default=[], help="a further `run` option")
    args = p.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}, {args.tries} tries, load {os.getloadavg()[0]:.2f}", flush=True)
    started = time.monotonic()
    tries = []
    for n in range(1, args.tries + 1):
        t = one_try(n, rng, args.window, args.second, args.run_arg)
        tries.append(t)
        print(t.line(), flush=True)
        if not t.ok:
            print("  output tail:\n    " + "\n    ".join(t.output.splitlines()[-15:]), flush=True)
    print(summary(tries, time.monotonic() - started))
    bad = [t.number for t in tries if not t.ok]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
