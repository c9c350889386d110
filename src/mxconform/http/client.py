"""The harness's HTTP client: every exchange is captured as redacted evidence.

Suites never build requests by hand: they call `MatrixClient.request` with `Credentials`
that say how a token travels. Rate limiting (429) is waited out and retried, never scored,
within the target's budget; network failures, a passed deadline and an oversized body raise
`HarnessError`s, which the verdict layer turns into ERROR. Credentials go only to the
target's origin or to an origin the caller names.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from mxconform.errors import HarnessError, TargetUnavailable
from mxconform.http.credentials import NO_CREDENTIALS, Credentials
from mxconform.http.evidence import Exchange, Recorder
from mxconform.http.limits import RateBudget, ResponseTooLarge, origin
from mxconform.http.redact import SecretRegistry, redact_body, redact_headers, redact_url

BODY_CAP = 16 * 1024
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization")


class NetworkError(HarnessError):
    """The target could not be reached, or it did not answer in time."""


class RateLimited(HarnessError):
    """The target kept answering 429 after the allowed retries."""


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
    max_retry_wait_s: float = 30.0  # per wait
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


class MatrixClient:
    """Talks to one target; records into one recorder."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        recorder: Recorder,
        secrets: SecretRegistry,
        pacer: Pacer,
        policy: RequestPolicy,
        on_login: Callable[[Any], None] | None = None,
        budget: RateBudget | None = None,
        tls: ssl.SSLContext | bool = True,
    ) -> None:
        self._on_login = on_login
        self._budget = budget or RateBudget(
            policy.rate_limit_budget_429,
            policy.rate_limit_budget_s,
            policy.failure_budget,
            policy.time_budget_s,
        )
        self._timed = True  # held to the target's time budget (the clean-up is not)
        self.tls = tls
        self._http = http
        self.base_url = base_url.rstrip("/")
        self.recorder = recorder
        self._secrets = secrets
        self._pacer = pacer
        self._policy = policy

    @property
    def secrets(self) -> SecretRegistry:
        """The run's registry: what a caller learns is secret is scrubbed from all evidence."""
        return self._secrets

    def with_recorder(self, recorder: Recorder) -> MatrixClient:
        clone = MatrixClient(
            self._http,
            self.base_url,
            recorder,
            self._secrets,
            self._pacer,
            self._policy,
            self._on_login,
            self._budget,
            self.tls,
        )
        clone._timed = self._timed
        return clone

    def untimed(self) -> MatrixClient:
        """The same client, not held to the target's time budget: the clean-up, which
        has a budget of its own (`plugin.state.bounded_cleanup`)."""
        clone = self.with_recorder(self.recorder)
        clone._timed = False
        return clone

    def with_http(self, http: httpx.AsyncClient) -> MatrixClient:
        """The same target, pacing and policy over another connection pool (a driver's own
        cookie jar)."""
        clone = self.with_recorder(self.recorder)
        clone._http = http
        return clone

    async def request(
        self,
        method: str,
        path: str,
        *,
        credentials: Credentials = NO_CREDENTIALS,
        json: Any = None,
        form: dict[str, str] | list[tuple[str, str]] | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        note: str | None = None,
        allow_origins: Iterable[str] = (),
    ) -> httpx.Response:
        """One request (429s waited out within the budget). `allow_origins`: origins other
        than the target's that this request's credentials may go to."""
        url = path if path.startswith("http") else self.base_url + path
        self._guard_origin(method, url, credentials, headers, allow_origins)
        query: list[tuple[str, str | int | float | bool | None]] = [
            *(params or {}).items(),
            *credentials.params,
        ]
        form_type = (
            [("Content-Type", "application/x-www-form-urlencoded")] if form is not None else []
        )
        attempts = 0
        while True:
            if self._budget.exhausted:
                raise RateLimited(
                    f"rate-limit budget exhausted: {self._budget.exhausted}; "
                    f"{method} {path} not sent"
                )
            given_up = self._budget.given_up(self._timed)
            if given_up:
                raise TargetUnavailable(f"{given_up}; {method} {path} not sent")
            request = self._http.build_request(
                method,
                url,
                params=query or None,
                json=json,
                content=urlencode(form) if form is not None else content,
                headers=[*credentials.headers, *(headers or {}).items(), *form_type],
                timeout=self._policy.timeout_s,
            )
            await self._pacer.wait()
            response = await self._send_counted(request, note)
            self._budget.answered(response.status_code)
            if response.status_code != 429:
                break
            if self._budget.exhausted:
                raise RateLimited(f"rate-limit budget exhausted: {self._budget.exhausted}")
            if attempts >= self._policy.max_rate_limit_retries:
                break
            attempts += 1
            delay = retry_delay(response, self._policy.max_retry_wait_s)
            if not self._budget.may_wait(delay):
                raise RateLimited(f"rate-limit budget exhausted: {self._budget.exhausted}")
            await asyncio.sleep(delay)
        if (
            self._on_login
            and method == "POST"
            and path.endswith("/login")
            and (response.status_code == 200)
        ):
            self._on_login(response.json())
        if response.status_code == 429:
            raise RateLimited(f"{method} {path}: still rate-limited (429) after {attempts} retries")
        return response

    async def _send_counted(self, request: httpx.Request, note: str | None) -> httpx.Response:
        """`_send`, its network failures counted against the target's budget, cut short
        when the target's time budget runs out."""
        left = self._budget.time_left() if self._timed else None
        try:
            if left is None:
                return await self._send(request, note)
            async with asyncio.timeout(max(left, 0.0)):
                return await self._send(request, note)
        except NetworkError:
            self._budget.failed()
            raise
        except TimeoutError:  # the time budget's, not the request's (that is a NetworkError)
            raise TargetUnavailable(
                f"{self._budget.time_spent()}; {request.method} {request.url.path} cut short"
            ) from None

    def _guard_origin(
        self,
        method: str,
        url: str,
        credentials: Credentials,
        headers: dict[str, str] | None,
        allow_origins: Iterable[str],
    ) -> None:
        """Refuse, before anything is sent, credentials bound for an origin nobody named."""
        carries = bool(credentials.headers or credentials.params) or any(
            name.lower() in _CREDENTIAL_HEADERS for name in headers or {}
        )
        if not carries:
            return
        home = origin(self.base_url)
        there = origin(url)
        allowed = {home, *(origin(o) for o in allow_origins)}
        if there not in allowed:
            raise HarnessError(
                f"{method} to {there} refused: it would carry credentials, and they may go "
                f"only to {', '.join(sorted(allowed))}"
            )

    async def _send(self, request: httpx.Request, note: str | None) -> httpx.Response:
        exchange = Exchange(
            method=request.method,
            url=redact_url(str(request.url), self._secrets),
            request_headers=redact_headers(_wire_headers(request.headers), self._secrets),
            request_body=redact_body(
                request.content, request.headers.get("content-type"), self._secrets, BODY_CAP
            ),
            started_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            note=note,
        )
        self.recorder.exchanges.append(exchange)
        start = time.perf_counter()
        policy = self._policy
        try:
            async with asyncio.timeout(policy.deadline_s):
                response = await self._http.send(request, stream=True)
                try:
                    content = await self._read_capped(response, exchange)
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            exchange.error = f"deadline of {policy.deadline_s:g}s exceeded (connect and reads)"
            raise NetworkError(f"{request.method} {exchange.url}: {exchange.error}") from exc
        except httpx.TimeoutException as exc:
            exchange.error = f"timeout after {self._policy.timeout_s:g}s ({type(exc).__name__})"
            raise NetworkError(f"{request.method} {exchange.url}: {exchange.error}") from exc
        except httpx.TransportError as exc:
            exchange.error = f"{type(exc).__name__}: {self._secrets.scrub(str(exc))}"
            raise NetworkError(f"{request.method} {exchange.url}: {exchange.error}") from exc
        finally:
            exchange.duration_ms = round((time.perf_counter() - start) * 1000, 2)
        exchange.response_body = redact_body(
            content, response.headers.get("content-type"), self._secrets, BODY_CAP
        )
        if response.status_code == 429:
            exchange.note = "rate-limited: waited out and retried (never scored)"
        # The body is decoded already: the copy callers read must not decode it again.
        headers = [(k, v) for k, v in response.headers.multi_items() if k != "content-encoding"]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=content,
            request=request,
            extensions=response.extensions,
        )

    async def _read_capped(self, response: httpx.Response, exchange: Exchange) -> bytes:
        """The (decoded) body, read no further than `max_response_bytes`."""
        exchange.status = response.status_code
        exchange.response_headers = redact_headers(_wire_headers(response.headers), self._secrets)
        cap = self._policy.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                exchange.error = (
                    f"response body over the cap of {cap} bytes: stopped reading at {size}"
                )
                raise ResponseTooLarge(f"{exchange.method} {exchange.url}: {exchange.error}")
            chunks.append(chunk)
        return b"".join(chunks)


def _wire_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    skip = {"accept-encoding", "connection", "user-agent", "content-length", "host"}
    return [(k, v) for k, v in headers.multi_items() if k.lower() not in skip]


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
        headers={"User-Agent": "mxconform"},
        limits=httpx.Limits(max_connections=8),
        verify=tls,
    )
