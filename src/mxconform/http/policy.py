"""What one target's requests are held to, apart from the client that sends them: the
pacing, the limits (`RequestPolicy`), how long a 429 asks to wait, the TLS trust, and the
pooled connection every client of the target shares."""

from __future__ import annotations

import asyncio
import email.utils
import functools
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from mxconform.http.wire import ACCEPT_ENCODING

MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class Pacer:
    """Bounds the request rate to one target, shared by every client of that target."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            self._next = max(now, self._next) + self._interval


@dataclass(frozen=True)
class RequestPolicy:
    timeout_s: float = 10.0  # per connect / read (httpx)
    max_rate_limit_retries: int = 3
    max_retry_wait_s: float = 600.0  # per wait: as long as the server asks, up to this
    deadline_s: float = 30.0  # the whole request: connect and every read
    max_response_bytes: int = MAX_RESPONSE_BYTES
    rate_limit_budget_429: int = 10  # consecutive 429s before the target is given up
    rate_limit_budget_s: float = 120.0  # seconds waited in total before it is given up
    failure_budget: int = 5  # time-outs and connection failures in a row before it is given up
    time_budget_s: float | None = None  # the target's wall-clock time, from its first check


def retry_delay(response: httpx.Response, cap: float) -> float:
    """How long a 429 asks us to wait: Retry-After first, else retry_after_ms, else 1 s."""
    header = response.headers.get("Retry-After")
    delay: float | None = None
    if header:
        try:
            delay = float(header)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(header) if header else None
            if parsed is not None:
                delay = (parsed - datetime.now(UTC)).total_seconds()
    if delay is None:
        try:
            ms = response.json().get("retry_after_ms")
            delay = float(ms) / 1000 if ms is not None else None
        except (ValueError, AttributeError, TypeError):
            delay = None
    return min(max(delay if delay is not None else 1.0, 0.0), cap)


def tls_context(
    ca_file: str | None = None, verify: bool = True, *more_cas: str
) -> ssl.SSLContext | bool:
    """What httpx verifies a target's certificates with: the system's trust store, plus an
    operator's CA bundle when given (and any more, e.g. an embedded target's own CA); False
    only when the operator turned checking off."""
    if not verify:
        return False
    bundles = []
    for bundle in (ca_file, *more_cas):
        if bundle is not None:
            stat = Path(bundle).stat()  # a bundle changed on disk is read again
            bundles.append((bundle, stat.st_mtime_ns, stat.st_size))
    return _trust_context(tuple(bundles))


@functools.lru_cache(maxsize=32)
def _trust_context(bundles: tuple[tuple[str, int, int], ...]) -> ssl.SSLContext:
    """One context per trust store: reading the system's took 20 to 30 ms of CPU, and every
    client, preflight and driver of a target asked for its own. Shared, so never changed
    once made."""
    context = ssl.create_default_context()
    for bundle, _, _ in bundles:
        context.load_verify_locations(bundle)
    return context


def new_http_client(tls: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """One pooled client per target (or per simulated user agent: its own cookie jar);
    redirects are never followed silently, so credentials never follow one."""
    return httpx.AsyncClient(
        follow_redirects=False,
        headers={"User-Agent": "mxconform", "Accept-Encoding": ACCEPT_ENCODING},
        limits=httpx.Limits(max_connections=8),
        verify=tls,
    )
