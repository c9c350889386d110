"""`mxconform run` and stop signals, from the program's first import to its exit.

Imported first by `mxconform.cli`: when this process is the `mxconform` program, a stop
signal that comes while it imports (half a second, before it can do anything with one) is
recorded only, and the run ends as soon as it begins. A KeyboardInterrupt raised inside an
import can be lost ("Exception ignored in: <function _get_module_lock.<locals>.cb>"): the
run then went on to its end, deaf to further signals.
"""

from __future__ import annotations

import itertools
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from mxconform import stopping


def _is_the_program() -> bool:
    """`mxconform ...` or `python -m mxconform.cli ...`, not a process that imports us."""
    if Path(sys.argv[0]).name == "mxconform":
        return True
    argv = list(getattr(sys, "orig_argv", []))
    return any(a == "-m" and b == "mxconform.cli" for a, b in itertools.pairwise(argv))


if _is_the_program():
    stopping.record_early()


def run_stoppable(run: Callable[[], int]) -> int:
    """`run()`'s exit code; on a stop signal 130 (SIGINT) or 143 (SIGTERM), within the stop
    budget, and at once on a second signal (`stopping`).

    The first signal raises KeyboardInterrupt where the run is, unless a phase installs its
    own handler (pytest's run, the parent of `--jobs` children, which passes it on). Whatever
    a normal end did not stop (an embedded server whose start was cut short) is killed, its
    state removed, before the process exits."""
    signame = stopping.requested()
    if signame is not None:  # it came while the program was importing
        print(f"mxconform: stopped by {signame} before the run began", file=sys.stderr)
        return stopping.exit_code(signame)
    before = stopping.registered()
    previous = stopping.install(stopping.raise_interrupt)
    stopping.watch()
    try:
        code = run()
    except KeyboardInterrupt:
        code = stopping.exit_code(stopping.requested())
        print(f"mxconform: stopped by {stopping.requested() or 'SIGINT'}", file=sys.stderr)
    finally:
        stopping.kill_leftovers(keep=before)
        stopping.restore(previous)
    signame = stopping.requested()
    return stopping.exit_code(signame) if signame is not None else code


def plain_signals() -> int | None:
    """The other commands (`serve`, ...): Python's own Ctrl-C again (a KeyboardInterrupt);
    130 or 143 when a stop signal came while the program imported."""
    for signum, default in (
        (signal.SIGINT, signal.default_int_handler),
        (signal.SIGTERM, signal.SIG_DFL),
    ):
        if stopping.is_ours(signal.getsignal(signum)):
            signal.signal(signum, default)
    signame = stopping.requested()
    return stopping.exit_code(signame) if signame is not None else None
