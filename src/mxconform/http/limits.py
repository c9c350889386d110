"""Where credentials may go, and what one target may cost the run.

`origin` names a URL's origin (scheme, host, port) the way messages show it; `RateBudget`
bounds the rate limiting, the failures in a row and the time a target may cost before the
run stops asking it.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from mxconform.errors import HarnessError

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> str:
    """`scheme://host[:port]`, lower-cased, the default port left out: two URLs may share
    credentials only when these are equal."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    shown = "" if port is None or port == _DEFAULT_PORTS.get(scheme) else f":{port}"
    return f"{scheme}://{host}{shown}"


class ResponseTooLarge(HarnessError):
    """The response grew past the target's `max_response_bytes`: reading stopped there."""


class RateBudget:
    """What one target may cost the run, shared by all its clients (like the Pacer): rate
    limiting (429s), time-outs and connection failures in a row, and wall-clock time. Past
    any of them every request fails at once instead of waiting for hours (a server that
    stalls every request cost 10 s a check, for as long as the run had checks)."""

    def __init__(
        self,
        max_consecutive_429: int = 10,
        max_wait_s: float = 120.0,
        failure_budget: int = 5,
        time_budget_s: float | None = None,
    ) -> None:
        self.max_consecutive_429 = max_consecutive_429
        self.max_wait_s = max_wait_s
        self.consecutive_429 = 0
        self.waited_s = 0.0
        self.exhausted: str | None = None
        self.failure_budget = failure_budget
        self.consecutive_failures = 0
        self.unanswered: str | None = None  # the target stopped answering: why
        self.time_budget_s = time_budget_s
        self._since: float | None = None  # when the target's clock started

    def answered(self, status: int) -> None:
        self.consecutive_failures = 0
        if status != 429:
            self.consecutive_429 = 0
            return
        self.consecutive_429 += 1
        if self.consecutive_429 >= self.max_consecutive_429:
            self.exhausted = f"{self.consecutive_429} consecutive 429 answers"

    def failed(self) -> None:
        """A request timed out or could not connect; a run of them gives the target up."""
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.failure_budget and self.unanswered is None:
            self.unanswered = (
                f"target stopped answering ({self.consecutive_failures} consecutive "
                "time-outs/connection failures)"
            )

    def may_wait(self, delay_s: float) -> bool:
        """Whether the budget allows this wait (counted when it does)."""
        if self.waited_s + delay_s > self.max_wait_s:
            self.exhausted = (
                f"waiting {delay_s:g}s more would pass {self.max_wait_s:g}s waited in total "
                f"({self.waited_s:g}s so far)"
            )
            return False
        self.waited_s += delay_s
        return True

    def start_clock(self) -> None:
        """The target's time budget counts from here (its first check), once."""
        if self._since is None:
            self._since = time.monotonic()

    def time_left(self) -> float | None:
        """Seconds of the time budget left (None: no budget, or its clock not started)."""
        if self.time_budget_s is None or self._since is None:
            return None
        return self.time_budget_s - (time.monotonic() - self._since)

    def time_spent(self) -> str:
        return f"target time budget of {self.time_budget_s:g} s spent"

    def given_up(self, timed: bool = True) -> str | None:
        """Why the target's remaining checks and requests fail at once, if they do; `timed`:
        whether the time budget counts (the clean-up has a budget of its own)."""
        if self.unanswered:
            return self.unanswered
        left = self.time_left() if timed else None
        return self.time_spent() if left is not None and left <= 0 else None
