"""Where credentials may go, and what one target may cost the run.

`origin` names a URL's origin (scheme, host, port) the way messages show it; `RateBudget`
bounds the rate limiting, the failures in a row and the time a target may cost before the
run stops asking it.
"""

from __future__ import annotations

import time
from collections import Counter
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


_LIMITED = (("/login", "login"), ("/register", "register"), ("/login/get_token", "login token"))


class RateBudget:
    """What one target may cost the run, shared by all its clients (like the Pacer): rate
    limiting (429s), time-outs and connection failures in a row, and wall-clock time. Past
    any of them every request fails at once instead of waiting for hours (a server that
    stalls every request cost 10 s a check, for as long as the run had checks).

    The wait budget is wall-clock: time during which at least one request was waiting out a
    429 (ten requests waiting the same minute cost a minute, not ten)."""

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
        self.waited_s = 0.0  # wall-clock seconds covered by waits so far
        self._horizon = 0.0  # when the furthest wait begun so far ends (monotonic clock)
        self.exhausted: str | None = None
        self.failure_budget = failure_budget
        self.consecutive_failures = 0
        self.unanswered: str | None = None  # the target stopped answering: why
        self.time_budget_s = time_budget_s
        self._since: float | None = None  # when the target's clock started

        # What the run spent of the operations servers rate-limit hardest (a figure of the
        # run: results.json `operations`), and how often it was told to wait.
        self.operations: Counter[str] = Counter()

    def sent(self, method: str, path: str) -> None:
        """Count a request that a homeserver rate-limits by its kind (POST /login and
        /register: Synapse's rc_login and rc_registration)."""
        if method != "POST" or not path.startswith("/_matrix/client/"):
            return
        for ending, kind in _LIMITED:
            if path.endswith(ending):
                self.operations[kind] += 1
                return

    def answered(self, status: int) -> None:
        self.consecutive_failures = 0
        if status == 429:
            self.operations["429 answers"] += 1
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

    def may_wait(self, delay_s: float) -> str | None:
        """None when the budget allows this wait (then counted: only the part that no wait
        already under way covers is new); else why not. A wait too long for what is left
        refuses that one request; the target is given up only once the budget is spent."""
        now = time.monotonic()
        new = max(0.0, now + delay_s - max(now, self._horizon))
        if self.waited_s + new > self.max_wait_s:
            return (
                f"the server asked to wait {delay_s:g}s; {self.max_wait_s - self.waited_s:g}s "
                f"of the target's {self.max_wait_s:g}s rate-limit budget is left (raise it "
                "with --max-wait or the target's rate_limit_budget_s)"
            )
        self.waited_s += new
        self._horizon = max(self._horizon, now + delay_s)
        if self.waited_s >= self.max_wait_s:
            self.exhausted = f"{self.waited_s:g}s waited on 429 answers, the whole budget"
        return None

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
