"""Errors that decide a verdict by their kind, not by where they were raised.

HarnessError: the harness could not carry a check out (ERROR, never FAIL).
PreconditionFailed: a step before the request under test went wrong (ERROR, never FAIL).
Unsupported: what a check needs is not there (SKIP, with the reason).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class HarnessError(Exception):
    """The harness could not carry out a check: the verdict is ERROR, never FAIL."""


class NotFromHomeserver(HarnessError):
    """The answer under judgement came from a proxy in front of the homeserver."""


class Unsupported(Exception):
    """What a check needs is beyond this driver; the reason becomes the SKIP message."""


class PreconditionFailed(HarnessError):
    """A step a check needs before its request under test went wrong (a setup request, a
    fixture, a helper): the rule under test was never tried, so the verdict is ERROR."""


class TargetUnavailable(HarnessError):
    """The target could not be started, reached or identified as a Matrix homeserver: its
    checks are not run, and each is recorded ERROR with this one reason."""


async def from_task(work: Awaitable[T]) -> T:
    """The result of work run as an asyncio task of its own. A stop signal (Ctrl-C, SIGTERM)
    that lands while the task runs is stored in it too, and would be raised again in
    whichever check awaits it next, during the clean-up, escaping pytest: there it is only
    a harness error (the run is stopping anyway)."""
    try:
        return await work
    except KeyboardInterrupt:
        raise HarnessError("the run was stopped while this was in flight") from None
