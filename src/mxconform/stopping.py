"""Stop signals (Ctrl-C, SIGTERM): the first ends a run cleanly within a budget, a second
ends it at once.

Why a module of its own: a KeyboardInterrupt raised wherever Python happens to be can be
lost (in a weakref callback or a `__del__` it is only printed, "Exception ignored in ...",
and the run went on to its end) or can leave a lock held (an import's module lock, that
another thread then waits for forever). So the first signal is also *recorded* here, the
run asks `requested()` at its own safe points, and a watchdog ends the process once
`STOP_BUDGET_S` has passed, whatever it was waiting for. A second signal, or the watchdog,
runs every `on_hard_stop` callback (children and embedded servers killed, their state
folders removed), then exits the process.

Nothing here takes a lock: a hard stop runs inside a signal handler, on the main thread,
which may hold any lock at that moment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

# A run stopped by one signal ends within this, clean-up included (the accounts' clean-up
# is bounded by 120 s, `plugin.state.CLEANUP_BUDGET_S`; a Synapse's stop by 15 s).
STOP_BUDGET_S = 150.0
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # as a shell reports a process the signal ended
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_first: list[str] = []  # the first stop signal's name, once one came
_first_at: list[float] = []
_hard_stops: list[Callable[[], None]] = []

Handler = Callable[[int, FrameType | None], Any]


def requested() -> str | None:
    """The name of the signal that stopped the run, if one did."""
    return _first[0] if _first else None


def exit_code(signame: str | None) -> int:
    return EXIT_CODES.get(signame or "SIGINT", 130)


def request(signame: str) -> bool:
    """Record a stop; True for the first one (the clean stop and the budget's clock start)."""
    if _first:
        return False
    _first.append(signame)
    _first_at.append(time.monotonic())
    return True


def reset() -> None:
    """Forget a recorded stop (for in-process runs after one, e.g. the project's tests)."""
    _first.clear()
    _first_at.clear()


def on_hard_stop(kill: Callable[[], None]) -> Callable[[], None]:
    """Run `kill` on a hard stop (it must be quick and take no lock); returns the call that
    takes it back, for when what it kills ended normally."""
    _hard_stops.append(kill)

    def forget() -> None:
        with contextlib.suppress(ValueError):
            _hard_stops.remove(kill)

    return forget


def registered() -> list[Callable[[], None]]:
    """The hard-stop callbacks registered now (to leave alone in `kill_leftovers`)."""
    return list(_hard_stops)


def kill_leftovers(keep: list[Callable[[], None]] | None = None) -> None:
    """Run the hard-stop callbacks still registered, but those in `keep` (registered before
    a run, in a process that runs more than one): what a normal end did not stop."""
    for kill in reversed(list(_hard_stops)):
        if keep is not None and any(kill is k for k in keep):
            continue
        with contextlib.suppress(ValueError):
            _hard_stops.remove(kill)
        with contextlib.suppress(BaseException):
            kill()


def hard_stop(why: str | None = None) -> NoReturn:
    """End the process at once: kill what was registered, then exit (no clean-up, no
    report: a second signal asks for exactly that)."""
    name = requested() or "SIGINT"
    with contextlib.suppress(BaseException):
        sys.stderr.write(f"mxconform: {why or f'{name} again'}: stopping at once\n")
        sys.stderr.flush()
    kill_leftovers()
    os._exit(exit_code(name))


def handler(first: Callable[[str], None], defer_in_imports: bool = False) -> Handler:
    """A signal handler: the first stop signal is recorded, then `first(name)` (which may
    raise KeyboardInterrupt); any later one is a hard stop.

    `defer_in_imports` (for a `first` that raises): while the main thread is inside an
    import or a `__del__`, the interrupt waits until it is out (`_watch`): raised there it
    is lost, or leaves the import system's lock held, and a thread still importing (an
    embedded target's start) then waits for it forever."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if _nudged:  # our own: a deferred stop, delivered now if it may be
            _nudged.clear()
            if _pending and not _inside_import(frame):
                _pending.clear()
                first(requested() or "SIGINT")
            return
        name = signal.Signals(signum).name
        if not request(name):
            hard_stop()
        if defer_in_imports and _inside_import(frame):
            _pending.append(signum)  # `_watch` nudges the main thread until it is out
            return
        first(name)

    on_signal.mxconform_stop = True  # type: ignore[attr-defined]
    return on_signal


_pending: list[int] = []  # a first stop not delivered yet (it came inside an import)
_nudged: list[bool] = []  # the signal the main thread gets next is the nudge's


def _inside_import(frame: FrameType | None) -> bool:
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith("<frozen importlib") or code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def is_ours(current: object) -> bool:
    return bool(getattr(current, "mxconform_stop", False))


def raise_interrupt(name: str) -> None:
    raise KeyboardInterrupt


def install(first: Callable[[str], None], defer_in_imports: bool = True) -> dict[int, Any]:
    """Make `handler(first)` the handler of both stop signals; the previous ones (to give
    back). Main thread only: elsewhere nothing is changed. A signal ignored when the
    program started (SIGINT, for a background job of a script) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    _start_watching()
    new = handler(first, defer_in_imports)
    return {s: signal.signal(s, new) for s in SIGNALS if signal.getsignal(s) != signal.SIG_IGN}


def restore(previous: dict[int, Any]) -> None:
    if threading.current_thread() is threading.main_thread():
        for signum, old in previous.items():
            signal.signal(signum, old)


def watch(budget_s: float = STOP_BUDGET_S) -> None:
    """Give a recorded stop `budget_s` to end the process, after which the watchdog stops
    it hard (the clean stop is stuck somewhere)."""
    _budget[:] = [budget_s]
    _start_watching()


_budget: list[float] = []  # none: no watchdog (an in-process run, e.g. the project's tests)
_watching: list[threading.Thread] = []


def _start_watching() -> None:
    """Once per process, from an ordinary context (never from a signal handler: starting a
    thread takes a lock the interrupted main thread may hold)."""
    if not _watching:
        thread = threading.Thread(target=_watch, name="mxconform-stop-watch", daemon=True)
        _watching.append(thread)
        thread.start()


def _watch() -> None:
    """Deliver a deferred stop (a signal to the main thread, every 50 ms, until it is out of
    the import), and end the process once a stop has outlived its budget. Only reads,
    sleeps and signals."""
    main = threading.main_thread().ident
    while True:
        time.sleep(0.05 if _pending else 0.2)
        if _pending and not _nudged and main is not None:
            _nudged.append(True)
            with contextlib.suppress(OSError, ValueError, IndexError):
                signal.pthread_kill(main, _pending[0])
        if _budget and _first_at and time.monotonic() - _first_at[0] > _budget[0]:
            hard_stop(f"not stopped {_budget[0]:g} s after {_first[0]}")


def record_early() -> None:
    """While the program imports (half a second before it can do anything with a signal):
    a stop signal is only recorded, and the run ends as soon as it begins (a
    KeyboardInterrupt raised inside an import can be lost, or break the import's lock)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, handler(lambda name: None))
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, handler(lambda name: None))
