"""The harness's HTTP client: every exchange is captured as redacted evidence.

Suites never build requests by hand: they call `MatrixClient.request` with `Credentials`
that say how a token travels. Rate limiting (429) is waited out and retried, never scored;
network failures raise `NetworkError`, which the verdict layer turns into ERROR.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from mxconform.errors import HarnessError
from mxconform.http.credentials import NO_CREDENTIALS, Credentials
from mxconform.http.evidence import Exchange, Recorder
from mxconform.http.redact import SecretRegistry, redact_body, redact_headers, redact_url

BODY_CAP = 16 * 1024


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
    timeout_s: float = 10.0
    max_rate_limit_retries: int = 3
    max_retry_wait_s: float = 30.0


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
    ) -> None:
        self._on_login = on_login
        self._http = http
        self.base_url = base_url.rstrip("/")
        self.recorder = recorder
        self._secrets = secrets
        self._pacer = pacer
        self._policy = policy

    def with_recorder(self, recorder: Recorder) -> MatrixClient:
        return MatrixClient(
            self._http,
            self.base_url,
            recorder,
            self._secrets,
            self._pacer,
            self._policy,
            self._on_login,
        )

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
    ) -> httpx.Response:
        url = path if path.startswith("http") else self.base_url + path
        query: list[tuple[str, str | int | float | bool | None]] = [
            *(params or {}).items(),
            *credentials.params,
        ]
        form_type = (
            [("Content-Type", "application/x-www-form-urlencoded")] if form is not None else []
        )
        attempts = 0
        while True:
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
            response = await self._send(request, note)
            if response.status_code != 429 or attempts >= self._policy.max_rate_limit_retries:
                break
            attempts += 1
            await asyncio.sleep(retry_delay(response, self._policy.max_retry_wait_s))
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
        try:
            response = await self._http.send(request)
            await response.aread()
        except httpx.TimeoutException as exc:
            exchange.error = f"timeout after {self._policy.timeout_s:g}s ({type(exc).__name__})"
            raise NetworkError(f"{request.method} {exchange.url}: {exchange.error}") from exc
        except httpx.TransportError as exc:
            exchange.error = f"{type(exc).__name__}: {self._secrets.scrub(str(exc))}"
            raise NetworkError(f"{request.method} {exchange.url}: {exchange.error}") from exc
        finally:
            exchange.duration_ms = round((time.perf_counter() - start) * 1000, 2)
        exchange.status = response.status_code
        exchange.response_headers = redact_headers(_wire_headers(response.headers), self._secrets)
        exchange.response_body = redact_body(
            response.content, response.headers.get("content-type"), self._secrets, BODY_CAP
        )
        if response.status_code == 429:
            exchange.note = "rate-limited: waited out and retried (never scored)"
        return response


def _wire_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    skip = {"accept-encoding", "connection", "user-agent", "content-length", "host"}
    return [(k, v) for k, v in headers.multi_items() if k.lower() not in skip]


def new_http_client() -> httpx.AsyncClient:
    """One pooled client per target; redirects are never followed silently. Login drivers
    use their own clients, one cookie jar per simulated user agent."""
    return httpx.AsyncClient(
        follow_redirects=False,
        headers={"User-Agent": "mxconform"},
        limits=httpx.Limits(max_connections=8),
    )
