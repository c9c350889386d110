"""A stop signal at any moment of a default run's start-up (two embedded targets, a child
process each starting its Synapse) ends the whole run within its budget, and a second one at
once, leaving no process and no state folder behind (`stop_tries.py`).

Issue 24 measured 2 hangs in 17 such tries: a KeyboardInterrupt lost where Python only
prints it, or raised inside an import so that the import lock stayed held and the target's
start (importing on its own thread) waited forever, the run deaf to further signals."""

from __future__ import annotations

import os
import random
import signal
import time
from types import SimpleNamespace

import pytest
from stop_tries import FIRST_BUDGET_S, one_try, summary

from mxconform import stopping
from mxconform.plugin import options
from mxconform.targets.embedded.synapse import synapse_available

needs_synapse = pytest.mark.skipif(not synapse_available(), reason="embedded extra missing")


def _tries(count: int, seed: int) -> None:
    rng = random.Random(seed)
    started = time.monotonic()
    tries = [one_try(n, rng) for n in range(1, count + 1)]
    print(f"\nseed {seed}: {summary(tries, time.monotonic() - started)}")
    for t in tries:
        print(t.line())
    bad = [t for t in tries if not t.ok]
    assert not bad, "\n\n".join(f"{t.line()}\n{t.output[-3000:]}" for t in bad)


@pytest.mark.integration
@needs_synapse
def test_a_stop_signal_in_the_first_seconds_ends_the_run_and_leaves_nothing():
    """Three tries (a second signal in some): the quick version of the soak below."""
    _tries(3, seed=24)


@pytest.mark.soak
@needs_synapse
def test_stop_signals_at_random_moments_of_start_up_soak():
    """`pytest -m soak tests/test_stop_signals.py -s`: MXCONFORM_SOAK_TRIES tries (50),
    MXCONFORM_SOAK_SEED to replay one (its seed is printed)."""
    count = int(os.environ.get("MXCONFORM_SOAK_TRIES", "50"))
    seed = int(os.environ.get("MXCONFORM_SOAK_SEED", random.randrange(1 << 30)))
    _tries(count, seed)


def test_the_first_stop_is_kept_and_a_second_is_a_hard_stop(monkeypatch):
    """In-process: the first signal is recorded before `first` runs (whatever it raises is
    then not the only trace of it); a later one runs every hard-stop callback, then exits."""
    killed: list[str] = []
    exits: list[int] = []
    monkeypatch.setattr(stopping.os, "_exit", lambda code: exits.append(code))
    monkeypatch.setattr(stopping, "_first", [])
    monkeypatch.setattr(stopping, "_first_at", [])
    monkeypatch.setattr(stopping, "_hard_stops", [])
    forget = stopping.on_hard_stop(lambda: killed.append("synapse"))
    stopping.on_hard_stop(lambda: killed.append("child"))
    seen: list[str] = []
    handler = stopping.handler(seen.append)
    handler(15, None)
    assert stopping.requested() == "SIGTERM" and seen == ["SIGTERM"] and not killed
    assert stopping.exit_code(stopping.requested()) == 143
    handler(2, None)  # a second signal, whichever
    assert killed == ["child", "synapse"] and exits == [143]
    forget()  # taken back after it ran: nothing left, no error
    assert FIRST_BUDGET_S < stopping.STOP_BUDGET_S


def test_a_run_started_with_sigint_ignored_keeps_it_so_and_still_stops_on_sigterm():
    """A background job of a script starts with SIGINT ignored: it stays ignored (POSIX),
    and SIGTERM (a CI cancel) still stops the run cleanly."""
    term = signal.getsignal(signal.SIGTERM)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = SimpleNamespace(stash=pytest.Stash())
    try:
        options._interrupt_anywhere(config)  # type: ignore[arg-type]
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert stopping.is_ours(signal.getsignal(signal.SIGTERM))
    finally:
        stopping.restore(config.stash.get(options._SAVED_HANDLERS, {}))
        signal.signal(signal.SIGINT, previous)
    assert signal.getsignal(signal.SIGTERM) == term  # given back


def test_a_reporter_that_cannot_render_the_stop_does_not_turn_it_into_a_crash():
    """pytest's terminal reporter raised TypeError rendering a KeyboardInterrupt whose
    traceback had a frame without a line number (CPython 3.11), and then, at the session's
    end, asserted it had a rendering: the reporter is given the interrupt's one line, which
    its own end-of-session report prints, so the stop stays a stop (exit 143)."""
    from _pytest.terminal import TerminalReporter

    lines: list[str] = []
    tw = SimpleNamespace(line=lambda text, **_: lines.append(text))
    reporter = SimpleNamespace(
        _keyboardinterrupt_memo=None,
        _tw=tw,
        config=SimpleNamespace(option=SimpleNamespace(fulltrace=False)),
        write_sep=lambda sep, text, **_: lines.append(text),
    )
    config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: reporter))
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as stop:
        excinfo = pytest.ExceptionInfo.from_exception(stop)
    wrapper = options.InterruptReport(config).pytest_keyboard_interrupt(excinfo)
    next(wrapper)
    with pytest.raises(StopIteration):
        wrapper.throw(TypeError("unsupported operand type(s) for -: 'NoneType' and 'int'"))
    TerminalReporter._report_keyboardinterrupt(reporter)  # what pytest does at the end
    assert lines[:2] == ["KeyboardInterrupt", "KeyboardInterrupt"]
    wrapper = options.InterruptReport(config).pytest_keyboard_interrupt(excinfo)
    next(wrapper)
    with pytest.raises(StopIteration):
        next(wrapper)  # a reporter that rendered it: nothing changes
