"""Errors that decide a verdict by their kind, not by where they were raised.

HarnessError: the harness could not carry a check out (ERROR, never FAIL).
PreconditionFailed: a step before the request under test went wrong (ERROR, never FAIL).
Unsupported: what a check needs is not there (SKIP, with the reason and its kind).
NotApplicable: the rule does not apply to this target (SKIP, not applicable).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class HarnessError(Exception):
    """The harness could not carry out a check: the verdict is ERROR, never FAIL."""


class NotFromHomeserver(HarnessError):
    """The answer under judgement came from a proxy in front of the homeserver."""


# A SKIP is one of two things, kept apart in results.json and every report: the rule does
# not apply here (not_applicable), or the harness could not test it (not_tested). `why`
# says which of each.
NOT_APPLICABLE, NOT_TESTED = "not_applicable", "not_tested"
SKIP_WHYS = {
    NOT_APPLICABLE: {
        "api": "the auth API is not offered by the target",
        "version": "outside the spec version the target is held to",
        "feature": "a feature the server does not offer (its configuration, or optional)",
    },
    NOT_TESTED: {
        "capability": "the harness lacks what the check needs here",
        "policy": "never risked on accounts given in servers.yaml",
        "budget": "would take longer than the run allows",
    },
}


class Unsupported(Exception):
    """What a check needs is beyond the harness here: SKIP, not tested, with the reason."""

    kind = NOT_TESTED

    def __init__(self, reason: str, why: str = "capability") -> None:
        super().__init__(reason)
        if why not in SKIP_WHYS[self.kind]:
            raise ValueError(f"{type(self).__name__}: unknown why {why!r}")
        self.why = why


class NotApplicable(Unsupported):
    """The rule does not apply to this target (an API it does not offer, a version gate, a
    feature it does not have): SKIP, not applicable, with the reason."""

    kind = NOT_APPLICABLE

    def __init__(self, reason: str, why: str = "feature") -> None:
        super().__init__(reason, why)


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
