"""The harness's HTTP client: every exchange is captured as redacted evidence.

Suites never build requests by hand: they call `MatrixClient.request` with `Credentials`
that say how a token travels. Rate limiting (429) is waited out and retried, never scored,
within the target's budget; network failures, a passed deadline, an oversized body (counted
as decoded, `wire.py`), a coding we did not ask for, JSON nested too deep and bytes queued
behind the response raise `HarnessError`s, which the verdict layer turns into ERROR.
Credentials go only to the target's origin or to an origin the caller names.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from json import dumps as json_dumps
from typing import Any
from urllib.parse import urlencode

import httpx

from mxconform.errors import HarnessError, TargetUnavailable
from mxconform.http.credentials import NO_CREDENTIALS, Credentials
from mxconform.http.evidence import Exchange, Recorder
from mxconform.http.limits import RateBudget, ResponseTooLarge, origin
from mxconform.http.policy import MAX_RESPONSE_BYTES as MAX_RESPONSE_BYTES
from mxconform.http.policy import Pacer as Pacer
from mxconform.http.policy import RequestPolicy as RequestPolicy
from mxconform.http.policy import new_http_client as new_http_client
from mxconform.http.policy import retry_delay
from mxconform.http.policy import tls_context as tls_context
from mxconform.http.proxied import proxy_answer
from mxconform.http.redact import SecretRegistry, redact_body, redact_headers, redact_url
from mxconform.http.wire import (
    MAX_JSON_DEPTH,
    BodyDecoder,
    TooDeep,
    UndecodableBody,
    UnsolicitedData,
    body_decoder,
    bytes_nested_deeper,
    drop_connection,
    leftover,
)

BODY_CAP = 16 * 1024
NOT_HOMESERVER = "mxconform.not_homeserver"  # a response extension: why it is a proxy's
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization")


class NetworkError(HarnessError):
    """The target could not be reached, or it did not answer in time."""


class RateLimited(HarnessError):
    """The target kept answering 429 after the allowed retries."""


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
        # The Server header the homeserver answered preflight with: an error page under
        # another name is a proxy's own answer (http/proxied.py).
        self.homeserver_header: str | None = None

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
        clone.homeserver_header = self.homeserver_header
        clone._timed = self._timed
        return clone

    @property
    def budget(self) -> RateBudget:
        """The target's budget, shared by its clients (and what it counted)."""
        return self._budget

    def with_budget(self, budget: RateBudget) -> MatrixClient:
        """The same client under a budget of its own: cleanup keeps one that a spent run
        budget never takes away."""
        clone = self.with_recorder(self.recorder)
        clone._budget = budget
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
        sent = (params, headers, json, form, content)
        self._guard_origin(method, url, credentials, headers, allow_origins, sent)
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
            request = self._build(
                method,
                url,
                query,
                json,
                urlencode(form, errors="surrogatepass") if form is not None else content,
                [*credentials.headers, *(headers or {}).items(), *form_type],
            )
            await self._pacer.wait()
            self._budget.sent(method, request.url.path)
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
            refused = self._budget.may_wait(delay)
            if refused is not None:
                raise RateLimited(f"{method} {path}: rate-limited (429): {refused}")
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

    def _build(
        self,
        method: str,
        url: str,
        query: list[tuple[str, str | int | float | bool | None]],
        json: Any,
        content: str | bytes | None,
        headers: list[tuple[str, str]],
    ) -> httpx.Request:
        """The request. A value a server gave that httpx cannot encode (a lone surrogate; in
        a header, anything not ASCII) goes as its UTF-8 bytes instead of raising: the harness
        sends back what it was given, and the server is judged on that."""
        timeout = self._policy.timeout_s
        try:
            return self._http.build_request(
                method,
                url,
                params=query or None,
                json=json,
                content=content,
                headers=headers,
                timeout=timeout,
            )
        except UnicodeEncodeError:
            pass
        raw = [(name.encode(), value.encode("utf-8", "surrogatepass")) for name, value in headers]
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query, errors="surrogatepass")
        if json is not None:  # ASCII JSON: a lone surrogate as its escape, "\ud800"
            content = json_dumps(json).encode()
            raw.append((b"Content-Type", b"application/json"))
        return self._http.build_request(method, url, content=content, headers=raw, timeout=timeout)

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
        sent: tuple[Any, ...] = (),
    ) -> None:
        """Refuse, before anything is sent, credentials bound for an origin nobody named:
        a credential header or query parameter, or any secret the run holds (a password, a
        token, a code, a verifier, a client secret) anywhere in the URL, headers or body."""
        home = origin(self.base_url)
        there = origin(url)
        allowed = {home, *(origin(o) for o in allow_origins)}
        if there in allowed:
            return
        carries = (
            bool(credentials.headers or credentials.params)
            or any(name.lower() in _CREDENTIAL_HEADERS for name in headers or {})
            or self._holds_secret(url, *sent)
        )
        if carries:
            raise HarnessError(
                f"{method} to {there} refused: it would carry credentials, and they may go "
                f"only to {', '.join(sorted(allowed))}"
            )

    def _holds_secret(self, *parts: Any) -> bool:
        """Whether any secret the registry knows is in these (text, bytes, JSON-like)."""
        for part in parts:
            if isinstance(part, bytes):
                part = part.decode("utf-8", errors="replace")
            if part is not None and self._secrets.scrub_any(part) != part:
                return True
        return False

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
                    extra = leftover(response)
                    if extra:  # never left for the next request on this connection to read
                        await drop_connection(response)
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
        if extra and extra.strip(b"\r\n"):  # (a stray blank line is only dropped)
            exchange.error = (
                f"unsolicited data after the response: {len(extra)} more bytes on the "
                "connection, which was closed"
            )
            raise UnsolicitedData(f"{request.method} {exchange.url}: {exchange.error}")
        if bytes_nested_deeper(content):  # before anyone parses it: json recurses per level
            exchange.error = f"response nested deeper than {MAX_JSON_DEPTH} levels of JSON"
            raise TooDeep(f"{request.method} {exchange.url}: {exchange.error}")
        if response.status_code == 429:
            exchange.note = "rate-limited: waited out and retried (never scored)"
        extensions = dict(response.extensions)
        foreign = self._homeserver_path(request.url) and proxy_answer(
            response.status_code,
            response.headers.get("server"),
            response.headers.get("content-type"),
            content,
            self.homeserver_header,
        )
        if foreign:  # no rule is judged on it (spec/matchers.py)
            exchange.note = f"not from the homeserver: {foreign}"
            extensions[NOT_HOMESERVER] = foreign
        # The body is decoded already: the copy callers read must not decode it again.
        headers = [(k, v) for k, v in response.headers.multi_items() if k != "content-encoding"]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=content,
            request=request,
            extensions=extensions,
        )

    def _homeserver_path(self, url: httpx.URL) -> bool:
        """A Matrix API path at the homeserver's origin (an OAuth server elsewhere, with a
        Server header of its own, answers for itself)."""
        return url.path.startswith("/_matrix/") and origin(str(url)) == origin(self.base_url)

    async def _read_capped(self, response: httpx.Response, exchange: Exchange) -> bytes:
        """The body, decoded by us in bounded steps: no more than `max_response_bytes` is
        read off the wire or decoded from it (a gzip bomb stops at the cap, not after)."""
        exchange.status = response.status_code
        exchange.response_headers = redact_headers(_wire_headers(response.headers), self._secrets)
        cap = self._policy.max_response_bytes
        decoder = BodyDecoder()
        chunks: list[bytes] = []
        wire = size = 0

        def over(where: str, at: int) -> ResponseTooLarge:
            exchange.error = (
                f"response body over the cap of {cap} bytes{where}: stopped reading at {at}"
            )
            return ResponseTooLarge(f"{exchange.method} {exchange.url}: {exchange.error}")

        def take(pieces: Iterable[bytes]) -> None:
            nonlocal size
            for piece in pieces:
                size += len(piece)
                if size > cap:
                    coded = "" if decoder.coding == "identity" else f" (decoded {decoder.coding})"
                    raise over(coded, size)
                chunks.append(piece)

        try:
            in_memory = response.is_stream_consumed  # (a mock transport's: decoded already)
            decoder = BodyDecoder() if in_memory else body_decoder(response.headers)
            async for raw in _raw(response, in_memory):
                wire += len(raw)
                if wire > cap and decoder.coding != "identity":  # (else `size` says it)
                    raise over(" on the wire", wire)
                take(decoder.feed(raw))
            take(decoder.end())
        except UndecodableBody as exc:
            exchange.error = str(exc)
            raise UndecodableBody(f"{exchange.method} {exchange.url}: {exc}") from None
        return b"".join(chunks)


async def _raw(response: httpx.Response, in_memory: bool) -> AsyncIterator[bytes]:
    if in_memory:
        yield response.content
        return
    async for raw in response.aiter_raw():
        yield raw


def _wire_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    skip = {"accept-encoding", "connection", "user-agent", "content-length", "host"}
    return [(k, v) for k, v in headers.multi_items() if k.lower() not in skip]
