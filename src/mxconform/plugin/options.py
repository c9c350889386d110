"""Command-line options, markers, and signals (Ctrl-C, SIGTERM) that stop a run cleanly."""

import asyncio
import contextlib
import signal
from collections.abc import Generator
from typing import Any

import pytest

from mxconform import stopping
from mxconform.oauth.drivers.base import DRIVER_GRANTS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mxconform", "Matrix authentication conformance")
    group.addoption(
        "--servers",
        metavar="FILE",
        help="targets file (default: ./servers.yaml, else the bundled one)",
    )
    group.addoption(
        "--server",
        metavar="NAME",
        action="append",
        default=[],
        help="target to run against (repeatable; default: the file's defaults)",
    )
    group.addoption(
        "--report-dir",
        metavar="DIR",
        default="reports",
        help="where each run's report folder is written (default: reports)",
    )
    group.addoption(
        "--spec-version",
        metavar="V",
        help="hold every target to this spec version "
        "(e.g. v1.20) instead of the newest it advertises",
    )
    group.addoption(
        "--oauth-driver",
        choices=sorted(DRIVER_GRANTS),
        help="log in to OAuth targets with this driver instead of the one in servers.yaml",
    )
    group.addoption(
        "--hypothesis-examples",
        metavar="N",
        type=int,
        default=8,
        help="bad-input checks: bodies drawn per endpoint (default: 8)",
    )
    # hypothesis's own pytest plugin usually adds it (and forces its seed with it)
    with contextlib.suppress(ValueError):
        group.addoption(
            "--hypothesis-seed",
            metavar="SEED",
            help="bad-input checks: draw other bodies, or replay a run's (its results.json "
            "run.hypothesis_seed; default 0: the same bodies every run)",
        )
    group.addoption(
        "--max-wait",
        metavar="SECONDS",
        type=float,
        help="how long, wall-clock, the run may wait out each target's rate limiting (429) "
        "before it gives the target up (default: the target's rate_limit_budget_s, 120)",
    )
    group.addoption(
        "--target-timeout",
        metavar="SECONDS",
        type=float,
        help="each target's wall-clock budget from its first check (default: servers.yaml's "
        "time_budget_s, none): past it, its remaining checks ERROR",
    )
    group.addoption(
        "--offline",
        action="store_true",
        default=False,
        help="embedded targets' synapse_version: use only releases already in the cache",
    )
    group.addoption(
        "--console",
        choices=["pytest", "live", "verbose", "quiet"],
        default="pytest",
        help="live: mxconform's own progress and one line per FAIL, WARN, ERROR (what "
        "`mxconform run` uses); verbose: a line per check; quiet: nothing until the end; "
        "pytest: pytest's own output",
    )
    group.addoption(
        "--requirement",
        dest="requirement",
        metavar="REQ",
        action="append",
        default=[],
        help="run only the checks citing this requirement id (repeatable)",
    )

    group.addoption(
        "--results-only",
        action="store_true",
        default=False,
        help="write results.json only, no HTML, JUnit or Allure (what --jobs children do)",
    )
    group.addoption(
        "--shard",
        metavar="K/N",
        help="run the K-th of N shares of the selected checks (`mxconform run --jobs` gives "
        "one target's checks to N processes this way)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(InterruptReport(config), "mxconform-interrupt-report")
    config.addinivalue_line(
        "markers",
        "check(id, *requirement_ids, transport=None): a conformance check with a "
        "stable id and the requirements it covers",
    )
    config.addinivalue_line(
        "markers",
        "api(*names): the auth API a check exercises (legacy, oauth); with both, it runs "
        "once, as the first one the target offers",
    )
    config.addinivalue_line(
        "markers", "destructive: the check changes or destroys its account (not on static users)"
    )
    if config.getoption("tbstyle", "auto") == "auto":
        # Failures are shown as one line in our words (judge), never pytest's traceback, so
        # pytest builds its own as one line too: in full, with the value of every argument,
        # it took 6 ms a failing check (3.5 of the 6 seconds of a run against a closed port).
        config.stash[BRIEF_KEY] = True
        config.option.tbstyle = "line"
    _interrupt_anywhere(config)


# Set when `--tb` was left at auto: each failure is one line of ours (`--tb=short|long|...`
# brings pytest's tracebacks back, secrets redacted).
BRIEF_KEY = pytest.StashKey[bool]()


def brief(config: pytest.Config) -> bool:
    return config.stash.get(BRIEF_KEY, False)


# Which signal stopped the run ("SIGINT", "SIGTERM"), once one did.
INTERRUPT_KEY = pytest.StashKey[str]()
_SAVED_HANDLERS = pytest.StashKey[dict[int, Any]]()


def _interrupt_anywhere(config: pytest.Config) -> None:
    """Make Ctrl-C and SIGTERM (a CI cancel, `docker stop`) stop the run cleanly, even inside
    a check's event loop.

    asyncio's runner swaps the default SIGINT handler for one that only cancels the current
    task, so pytest never hears of the interrupt; a handler of our own that raises
    KeyboardInterrupt is left alone. The first signal stops starting checks; pytest then
    tears the fixtures down (test accounts deactivated, tokens revoked, each within a
    bounded time) and the partial report is written, marked interrupted. The signal is
    recorded too (`stopping`): where its KeyboardInterrupt is lost, the run still stops at
    its next check (`pytest_runtest_protocol`). A second signal ends the process at once.
    """
    for signum, default in (
        (signal.SIGINT, signal.default_int_handler),
        (signal.SIGTERM, signal.SIG_DFL),
    ):
        current = signal.getsignal(signum)
        if current not in (default, signal.SIG_IGN) and not stopping.is_ours(current):
            return  # someone else's handler: theirs to stop the run (one ignored stays so)

    def stop(name: str) -> None:
        config.stash[INTERRUPT_KEY] = name
        with contextlib.suppress(RuntimeError):  # none running: nothing can be left queued
            config.stash[_INTERRUPTED_LOOP] = asyncio.get_running_loop()
        raise KeyboardInterrupt

    config.stash[_SAVED_HANDLERS] = stopping.install(stop)


def stop_requested(config: pytest.Config) -> str | None:
    """The stop signal this run received, if any (recorded in the stash for the report)."""
    signame = stopping.requested()
    if signame is not None and INTERRUPT_KEY not in config.stash:
        config.stash[INTERRUPT_KEY] = signame
    return signame


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> None:
    """A stop whose KeyboardInterrupt was lost (it landed where Python only prints it, in a
    weakref callback or a `__del__`): no further check starts."""
    signame = stop_requested(item.config)
    if signame is not None:
        raise item.session.Interrupted(f"stopped by {signame}")


# The event loop a stop signal interrupted, if one was running when it came.
_INTERRUPTED_LOOP = pytest.StashKey[asyncio.AbstractEventLoop]()


def forget_stale_stops(loop: asyncio.AbstractEventLoop) -> int:
    """Cancel the "stop the loop, its future is done" callbacks left queued in `loop`.

    A stop signal raises KeyboardInterrupt wherever Python is. When it lands after the
    future that `run_until_complete` waits for is done, but before the loop has run the
    callback that stops it, that callback stays queued: the next `run_until_complete` (the
    fixtures' teardown, which deactivates the accounts and writes nothing until it ends)
    stops after one step with "Event loop stopped before Future completed", and the run
    ends with no report. Returns how many were cancelled.
    """
    stopper = getattr(asyncio.base_events, "_run_until_complete_cb", None)
    queued = getattr(loop, "_ready", None)  # CPython's loops; another loop has none of it
    if stopper is None or queued is None or loop.is_running():
        return 0
    stale = [h for h in queued if getattr(h, "_callback", None) is stopper]
    for handle in stale:
        handle.cancel()
    return len(stale)


class PlainInterrupt:
    """What pytest's reporter is given for a stop it could not render: the one line it
    prints for an interrupt (its `reprcrash`), no traceback."""

    def __init__(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.reprcrash = self
        value = str(excinfo.value)
        self.message = f"{excinfo.typename}: {value}" if value else excinfo.typename

    def toterminal(self, tw: Any) -> None:
        tw.line(self.message)


class InterruptReport:
    """A stop signal's traceback that pytest's reporter cannot render does not cost the run
    its clean stop. CPython 3.11 can leave a frame without a line number where the signal
    landed (`tb_lineno` None): the reporter's `getrepr` raised TypeError, and pytest ended
    with an internal error, exit 1 instead of 143 (seen once, in a full test run). The
    reporter gets the interrupt's one line instead; it prints that at the session's end."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    @pytest.hookimpl(wrapper=True)
    def pytest_keyboard_interrupt(
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> Generator[None]:
        try:
            yield
        except Exception:  # the reporter's own failure; the stop itself is recorded elsewhere
            reporter = self._config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter._keyboardinterrupt_memo = PlainInterrupt(excinfo)
        return None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After a stop signal, before pytest tears the fixtures down on the same loop."""
    stop_requested(session.config)  # the report says so, even if its interrupt was lost
    loop = session.config.stash.get(_INTERRUPTED_LOOP, None)
    if loop is not None and not loop.is_closed():
        forget_stale_stops(loop)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give the process its signal handlers back (in-process runs, e.g. the project's tests)."""
    stopping.restore(config.stash.get(_SAVED_HANDLERS, {}))
