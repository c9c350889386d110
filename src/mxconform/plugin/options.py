"""Command-line options, markers, and Ctrl-C that stops a run inside an event loop."""

import signal
import threading

import pytest

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
        "--offline",
        action="store_true",
        default=False,
        help="embedded targets' synapse_version: use only releases already in the cache",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "check(id, *requirement_ids, transport=None): a conformance check with a "
        "stable id and the requirements it covers",
    )
    config.addinivalue_line("markers", "api(name): the auth API a check exercises (legacy, oauth)")
    config.addinivalue_line(
        "markers", "destructive: the check changes or destroys its account (not on static users)"
    )
    _interrupt_anywhere()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _interrupt_anywhere() -> None:
    """Make Ctrl-C stop the run even inside a check's event loop.

    asyncio's runner swaps the default SIGINT handler for one that only cancels the current
    task, so pytest never hears of the interrupt and the run goes on. Any other handler is
    left alone by asyncio, so one that raises KeyboardInterrupt keeps Ctrl-C meaning "stop,
    tear down (stopping embedded servers) and report".
    """
    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        signal.signal(signal.SIGINT, _raise_interrupt)
